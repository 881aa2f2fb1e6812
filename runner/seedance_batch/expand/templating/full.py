"""Compiling a template with Jinja: its syntax, nesting, refused constructs, then a renderer.

Loaded only when a template needs more than the fast path's shape (or a fast-path
template needs Jinja after all): importing Jinja and building the sandbox is most of
a ``validate``'s start-up.
"""

from __future__ import annotations

import time
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError

from .budget import current_budget
from .fastpath import DICT_ATTRIBUTES, Piece, Renderer, runner
from .limits import MAX_NESTING, MAX_SOURCE, TemplateProblem
from .renderer import JinjaRenderer, too_deep
from .sandbox import ENV

__all__ = ["compile_jinja", "jinja_renderer", "parse", "refuse_unsafe"]


def jinja_renderer(source: str) -> JinjaRenderer:
    """Jinja's renderer of a template the fast path read from its source, for the jobs it cannot render.

    The parse comes out of the running expansion's budget, as a compile does.
    """
    budget = current_budget()
    budget.check()
    start = time.monotonic()
    try:
        return JinjaRenderer(parse(source))
    finally:
        budget.spend(time.monotonic() - start)


def compile_jinja(source: str) -> Renderer:
    """The renderer of ``source``; raises :class:`~.limits.TemplateProblem` for what it cannot be."""
    tree = parse(source)
    renderer = JinjaRenderer(tree)
    pieces = _tree_pieces(tree)
    if pieces is None:
        renderer.load()  # now: unknown filters and tests are found when Jinja compiles
        return renderer
    return runner(pieces, renderer)  # Jinja compiles it only if a job needs it (three quarters of the time, saved)


def parse(source: str) -> nodes.Template:
    """Jinja's tree of ``source``, once it is known to be short, shallow and safe."""
    if len(source) > MAX_SOURCE:
        raise TemplateProblem(f"the template is {len(source)} characters long; at most {MAX_SOURCE}")
    try:
        tree = ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno) from None
    except RecursionError:
        raise too_deep() from None
    if _depth(tree) > MAX_NESTING:
        raise too_deep()
    refuse_unsafe(tree)
    return tree


def _depth(tree: nodes.Node) -> int:
    """How deep the tree nests, found without recursion (deep trees are what overflow it)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_NESTING:
            stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return deepest


def _tree_pieces(tree: nodes.Template) -> list[Piece] | None:
    """The fast path's pieces of a parsed template, when it has the shape (see :mod:`.fastpath`)."""
    pieces: list[Piece] = []
    for output in tree.body:
        if not isinstance(output, nodes.Output):
            return None
        for node in output.nodes:
            if isinstance(node, nodes.TemplateData):
                pieces.append(node.data)
                continue
            chain = _lookup_chain(node)
            if chain is None:
                return None
            pieces.append(chain)
    return pieces


def _lookup_chain(node: nodes.Node) -> list[str] | None:
    attrs: list[str] = []
    while isinstance(node, nodes.Getattr):
        if node.attr in DICT_ATTRIBUTES:
            return None  # Jinja would find the dict method first
        attrs.append(node.attr)
        node = node.node
    if not isinstance(node, nodes.Name) or node.ctx != "load":
        return None
    return [node.name, *reversed(attrs)]


def refuse_unsafe(tree: nodes.Template) -> None:
    """Raise for what no template may do: load others, define macros, nest loops, name ``_`` things."""
    for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        kind = type(node).__name__.lower().replace("fromimport", "import")
        raise TemplateProblem(f"templates cannot {kind} other templates; write the text inline", node.lineno)
    # Loops inside loops (or inside macros called from loops) multiply: three ranges of
    # 1000 are a billion steps and a hung plan. One level of loop is always bounded.
    for node in tree.find_all((nodes.Macro, nodes.CallBlock)):
        raise TemplateProblem("templates cannot define macros; put repeated text in vars", node.lineno)
    for loop in tree.find_all(nodes.For):
        inner = next(loop.find_all(nodes.For), None)
        if inner is not None or loop.recursive:
            raise TemplateProblem(
                "loops inside loops (or recursive loops) are not allowed in templates; loop once, "
                "or build the list in vars", (inner or loop).lineno,
            )
    for named in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name, nodes.Filter, nodes.Test)):
        name = _name_of(named)
        if isinstance(name, str) and name.startswith("_"):
            raise TemplateProblem(
                f"template uses {name!r}; names starting with '_' are not allowed (sandbox)", named.lineno
            )


def _name_of(node: nodes.Node) -> Any:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, (nodes.Name, nodes.Filter, nodes.Test)):
        return node.name
    value = node.arg  # type: ignore[attr-defined]
    return value.value if isinstance(value, nodes.Const) else None
