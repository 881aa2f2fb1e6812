"""Guards the compiled template calls: loops, ``~`` and slices, which Jinja compiles to plain Python.

:class:`Guard` rewrites a parsed template so that each goes through a guard,
as a filter named with a ``_`` (no template can name one, see
:func:`~.compiler.refuse_unsafe`); context filters, so never folded at compile time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, cast

from jinja2 import nodes
from jinja2.runtime import Context, markup_join, str_join
from jinja2.utils import pass_context
from jinja2.visitor import NodeTransformer

from .deadline import LOCAL, tick
from .sizes import need, need_items, text_size

__all__ = ["Guard", "guard_concat", "guard_iter", "guard_slice"]


@pass_context
def guard_iter(context: Context, iterable: Iterable[Any], text: int) -> Iterator[Any]:
    """A loop's items, checking the deadline per item and counting the loop body's text."""
    if isinstance(iterable, (str, bytes)):
        need(len(iterable), "a loop over a text")
    render = LOCAL.render
    for item in iterable:
        if render is not None:
            render.write(text)
            render.tick()
        yield item


@pass_context
def guard_concat(context: Context, parts: tuple[Any, ...]) -> str:
    """``a ~ b``, refused before it is built if too long."""
    tick()
    need(sum([len(p) if p.__class__ is str else text_size(p) for p in parts]), "'~'")
    return (markup_join if context.eval_ctx.autoescape else str_join)(parts)


@pass_context
def guard_slice(context: Context, value: Any, start: Any, stop: Any, step: Any) -> Any:
    """``value[start:stop:step]``, refused before it is copied if too long."""
    if isinstance(value, (str, bytes, list, tuple)):
        try:
            size = len(range(len(value))[start:stop:step])
        except (TypeError, ValueError):
            size = 0  # the slice itself raises the right error
        (need if isinstance(value, (str, bytes)) else need_items)(size, "a slice")
    return value[start:stop:step]


class Guard(NodeTransformer):
    """Routes what Jinja compiles to plain Python (loops, ``~``, slices) through the guards."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        """The loop's items through :func:`guard_iter`."""
        self.generic_visit(node)  # in place: a For's children are replaced, the For stays
        text = sum(len(data.data) for data in node.find_all(nodes.TemplateData))
        node.iter = _guard_filter("_loop", cast(nodes.Expr, node.iter), [nodes.Const(text)])
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        """``a ~ b`` through :func:`guard_concat`."""
        self.generic_visit(node)
        return _guard_filter("_concat", nodes.Tuple(node.nodes, "load"), [])

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
        """A slice through :func:`guard_slice`."""
        self.generic_visit(node)
        part = node.arg
        if not isinstance(part, nodes.Slice):
            return node
        bounds = [p if p is not None else nodes.Const(None) for p in (part.start, part.stop, part.step)]
        return _guard_filter("_slice", node.node, bounds)


def _guard_filter(name: str, value: nodes.Expr, args: list[nodes.Expr]) -> nodes.Expr:
    guard = nodes.Filter(value, name, args, [], None, None)
    guard.set_lineno(value.lineno or 1)
    return guard
