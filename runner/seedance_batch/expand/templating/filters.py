"""Jinja's filters, bounded: every one checks the deadline and its result; those that can grow check first.

A filter that can build more than it was given (``center``, ``indent``,
``wordwrap``, ``replace``, ``join``, ``format``, ``tojson``, ``urlize``,
``batch``, ``slice``) is checked before it runs, from its arguments; a text
filter checks its input; every result is checked after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from itertools import chain
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from jinja2.runtime import Context
from jinja2.utils import _PassArg, pass_context

from .deadline import tick
from .formatting import check_percent
from .sizes import arg, checked, need, need_items, replaced_size, text_arg, text_size, width

__all__ = ["bounded_sum", "guarded_filter"]

# tojson's indent: deeper indentation multiplies the text by the nesting depth.
_MAX_JSON_INDENT = 16


def _pre_center(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    need(max(text_size(value), width(arg(args, kwargs, 0, "width", 80))), "|center")
    return value


def _pre_indent(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    text = text_arg(value, "|indent")
    need(len(text) + (text.count("\n") + 1) * width(arg(args, kwargs, 0, "width", 4)), "|indent")
    return value


def _pre_wordwrap(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    # Each line but the last is at least half the width (it and the next word did not
    # fit together), so there are at most 2 * len / width lines per paragraph.
    text = text_arg(value, "|wordwrap")
    columns = max(width(arg(args, kwargs, 0, "width", 79)), 1)
    wrap = arg(args, kwargs, 2, "wrapstring", None)
    lines = 2 * len(text) // columns + text.count("\n") + 2
    need(len(text) + lines * (1 if wrap is None else width(wrap)), "|wordwrap")
    return value


def _pre_replace(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    text = text_arg(value, "|replace")
    old, new = arg(args, kwargs, 0, "old", ""), arg(args, kwargs, 1, "new", "")
    need(replaced_size(text, str(old), str(new), arg(args, kwargs, 2, "count", None)), "|replace")
    return value


def _pre_join(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    items = list(value)  # an attribute of an item is no longer than the item: the bound holds
    separator = arg(args, kwargs, 0, "d", "")
    need(sum(text_size(item) for item in items) + text_size(separator) * max(len(items) - 1, 0), "|join")
    return items


def _pre_format(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    check_percent(text_arg(value, "|format"), kwargs or args)
    return value


def _pre_tojson(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    need(text_size(value), "|tojson")
    indent = arg(args, kwargs, 0, "indent", None)
    if indent is not None and width(indent) > _MAX_JSON_INDENT:
        raise SecurityError(f"|tojson indent {width(indent)}; at most {_MAX_JSON_INDENT}")
    return value


def _pre_urlize(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    # Each link (one per three characters at most) writes its URL twice plus its attributes.
    text = text_arg(value, "|urlize")
    extra = 60 + sum(text_size(arg(args, kwargs, i, n, "")) for i, n in ((2, "target"), (3, "rel")))
    need(3 * len(text) + (len(text) // 3 + 1) * extra, "|urlize")
    return value


def _pre_batch(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if arg(args, kwargs, 1, "fill_with", None) is not None:  # the last batch is filled up to the count
        need_items(width(arg(args, kwargs, 0, "linecount", 0)), "|batch")
    return value


def _pre_slice(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    need_items(width(arg(args, kwargs, 0, "slices", 0)), "|slice")  # one list per slice, even empty
    return value


_TEXT_FILTERS = frozenset({"capitalize", "e", "escape", "forceescape", "lower", "pprint", "safe", "string",
                           "striptags", "title", "trim", "truncate", "upper", "urlencode", "xmlattr"})
# Filters that iterate their input: over a text, each character becomes an item.
_ITERATING = frozenset({"batch", "dictsort", "groupby", "join", "list", "map", "max", "min", "reject",
                        "rejectattr", "reverse", "select", "selectattr", "slice", "sort", "sum", "unique"})
_PRECHECKS: dict[str, Callable[[Any, tuple[Any, ...], Mapping[str, Any]], Any]] = {
    "center": _pre_center, "indent": _pre_indent, "wordwrap": _pre_wordwrap, "replace": _pre_replace,
    "join": _pre_join, "format": _pre_format, "tojson": _pre_tojson, "urlize": _pre_urlize,
    "batch": _pre_batch, "slice": _pre_slice,
}


def _pre_text(name: str) -> Callable[[Any, tuple[Any, ...], Mapping[str, Any]], Any]:
    def check(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        need(text_size(value), f"|{name}")
        return value

    return check


def guarded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as a template calls it: deadline, checks before (if it can grow) and after.

    A context filter, so Jinja never runs it while compiling (it folds constant
    filter calls otherwise, with no check of time or size).
    """
    passes = _PassArg.from_obj(func)
    precheck = _PRECHECKS.get(name) or (_pre_text(name) if name in _TEXT_FILTERS else None)
    iterating = name in _ITERATING
    what = f"|{name}"

    @pass_context
    def run(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        if iterating and isinstance(value, (str, bytes)):
            need(len(value), f"{what} over a text")
        if precheck is not None:
            value = precheck(value, args, kwargs)
        if passes is _PassArg.context:
            result = func(context, value, *args, **kwargs)
        elif passes is _PassArg.eval_context:
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif passes is _PassArg.environment:
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        return checked(result, what)

    run.__name__ = run.__qualname__ = getattr(func, "__name__", name)
    run.__doc__ = func.__doc__  # not update_wrapper: it would copy func's pass-arg marker over run's
    return run


def bounded_sum(environment: Any, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    """Jinja's ``sum``, but lists and tuples are joined in one pass: ``sum`` of lists is quadratic."""
    values = list(iterable)
    if attribute is not None:
        getter = make_attrgetter(environment, attribute)
        values = [getter(v) for v in values]
    if isinstance(start, (list, tuple)) and all(type(v) is type(start) for v in values):
        need_items(len(start) + sum(len(v) for v in values), "|sum")
        return type(start)(chain(start, *values))
    if any(isinstance(v, (list, tuple, str, bytes)) for v in values):
        raise SecurityError("|sum adds numbers, or lists or tuples to a start of the same type")
    return sum(values, start)


bounded_sum.jinja_pass_arg = _PassArg.environment  # type: ignore[attr-defined]
