"""The sandbox templates run in: Jinja's immutable sandbox, its operators, calls and writes bounded.

:data:`ENV` is the one environment every template compiles in: ``random`` gone
(a different request, so a new job to pay for, on every run), every filter
guarded (:mod:`.filters`), no globals but a bounded ``range`` and ``dict``, and the
guards :mod:`.guards` routes loops, ``~`` and slices through.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from functools import update_wrapper
from typing import Any, cast

from jinja2 import StrictUndefined, Undefined
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from ...safetext import bound
from .deadline import LOCAL, tick
from .filters import bounded_sum, guarded_filter
from .formatting import BoundedEscapeFormatter, BoundedFormatter, check_percent
from .guards import guard_concat, guard_iter, guard_slice
from .limits import MAX_BITS, MAX_EXPONENT, MAX_QUOTE, MAX_RANGE, MAX_TEXT
from .sizes import arg, checked, need, need_items, replaced_size, text_size, width

__all__ = ["ENV", "GLOBALS", "Sandbox"]

_SMALL_NUMBERS = frozenset({int, float, bool})


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with its operators, calls and ``str.format`` bounded."""

    # Intercepted so that they are checked, and so that constant folding cannot
    # hang compilation ({{ 9**9**9**9 }}, {{ "%999999999d" % 1 }}): Jinja never
    # folds an intercepted operator.
    intercepted_binops = frozenset({"**", "*", "%", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """``**``, ``*``, ``%`` and ``+``, refused before they build something too large."""
        if operator == "+" and left.__class__ in _SMALL_NUMBERS and right.__class__ in _SMALL_NUMBERS:
            return cast(Any, left) + right  # loop.index + 1: the common case, and never large
        tick()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_repeat(left, right)
        elif operator == "%" and isinstance(left, (str, bytes)):
            check_percent(left, right)
        elif operator == "+":
            _check_add(left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Call from a template: deadline, sandbox, and the size checks of str methods."""
        tick()
        if not __self.is_safe_callable(__obj):
            raise SecurityError(f"{__obj!r} is not safely callable")
        what = f".{getattr(__obj, '__name__', 'call')}()"
        owner = getattr(__obj, "__self__", None)
        # Builtin methods, and Markup's (|safe) Python ones that wrap them.
        if isinstance(owner, (str, bytes, int)) and isinstance(__obj, (types.BuiltinMethodType, types.MethodType)):
            args = _check_method(owner, __obj.__name__, args, kwargs, what)
        return checked(__context.call(__obj, *args, **kwargs), what)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` through :class:`BoundedFormatter` (Jinja's, bounded)."""
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or value.__name__ not in ("format", "format_map"):
            return None
        text = value.__self__
        if not isinstance(text, str):
            return None
        is_map = value.__name__ == "format_map"
        escape = text.escape if isinstance(text, Markup) else None

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument and no keyword arguments")
                kwargs, args = args[0], ()
            formatter = BoundedEscapeFormatter(self, escape=escape) if escape else BoundedFormatter(self)
            return type(text)(formatter.vformat(text, args, kwargs))

        return update_wrapper(wrapper, value)


def _check_power(left: Any, right: Any) -> None:
    if isinstance(right, (int, float)) and (
        abs(right) > MAX_EXPONENT or (isinstance(left, int) and left.bit_length() * abs(right) > MAX_BITS)
    ):
        raise SecurityError(f"power {bound(repr(left), MAX_QUOTE)} ** {right!r} is too large")


def _check_repeat(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):  # squaring in a row doubles the digits each time
        if left.bit_length() + right.bit_length() > MAX_BITS:
            raise SecurityError(f"a product of more than {MAX_BITS} bits is too large")
        return
    for seq, count in ((left, right), (right, left)):
        if isinstance(count, int) and count > 0:
            if isinstance(seq, (str, bytes)):
                need(len(seq) * count, "repetition")
            elif isinstance(seq, (list, tuple)):
                need_items(len(seq) * count, "repetition")


def _check_add(left: Any, right: Any) -> None:
    if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
        need(len(left) + len(right), "'+'")
    elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        need_items(len(left) + len(right), "'+'")


def _check_method(owner: str | bytes | int, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], what: str) -> tuple[Any, ...]:
    """Refuse a ``str``/``bytes``/``int`` method call whose result would be too long; the args to call with."""
    if isinstance(owner, int):
        if name == "to_bytes":
            need(width(arg(args, kwargs, 0, "length", 1)), what)
        return args
    need(len(owner), what)  # no method work on a text longer than a template may build
    if name in ("center", "ljust", "rjust", "zfill"):
        need(max(len(owner), width(arg(args, kwargs, 0, "width", 0))), what)
    elif name == "expandtabs":
        tab = "\t" if isinstance(owner, str) else b"\t"
        need(len(owner) + owner.count(tab) * width(arg(args, kwargs, 0, "tabsize", 8)), what)  # type: ignore[arg-type]
    elif name == "join" and args:
        items = list(args[0])
        need(sum(text_size(i) for i in items) + len(owner) * max(len(items) - 1, 0), what)
        return (items, *args[1:])
    elif name == "replace" and len(args) >= 2:
        need(replaced_size(owner, args[0], args[1], arg(args, kwargs, 2, "count", -1)), what)
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((text_size(v) if isinstance(v, str) else 1 for v in args[0].values()), default=1)
        need(len(owner) * longest, what)
    return args


def _range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise SecurityError(f"range of {len(result)} items; at most {MAX_RANGE}")
    return result


def _dict(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    """``dict(...)``; a function, since the ``dict`` type would reach ``dict.update(vars, ...)``."""
    return dict(*args, **kwargs)


def _finalize(value: Any) -> Any:
    """Check one ``{{ ... }}`` write: a value (not a function), short enough, within the render's budget."""
    if value.__class__ is not str and not isinstance(value, Undefined):
        size = text_size(value)  # refuses functions; up to MAX_TEXT steps, so worth a look at the clock
        tick()
    else:
        size = len(value) if value.__class__ is str else 0  # Undefined: writing it raises
    if size > MAX_TEXT:
        raise SecurityError(f"a value it writes is longer than {MAX_TEXT} characters")
    render = LOCAL.render
    if render is not None:  # None while Jinja folds a constant at compile time
        render.write(size)
    return value


def _environment() -> Sandbox:
    env = Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, finalize=_finalize)
    env.filters.pop("random")  # a different request, so a new job to pay for, on every run
    env.filters["sum"] = bounded_sum
    env.filters = {name: guarded_filter(name, func) for name, func in env.filters.items()}
    env.globals.clear()
    env.globals.update(range=_range, dict=_dict)
    env.filters.update(_loop=guard_iter, _concat=guard_concat, _slice=guard_slice)
    return env


ENV = _environment()
GLOBALS = dict(ENV.globals)
