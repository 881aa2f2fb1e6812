"""The sizes of values measured without building them, and the checks made before building.

Every size function costs at most about the limit it checks against, however
large the value, so the checks can run before every write and every operation
that turns a value into text (see the package's docstring).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import Undefined
from jinja2.exceptions import SecurityError, TemplateRuntimeError

from .limits import MAX_ITEMS, MAX_TEXT

__all__ = [
    "WRITES_CODE", "WRITES_LAZY", "arg", "checked", "need", "need_items", "replaced_size", "repr_size", "text_arg",
    "text_size", "too_big", "width",
]


def text_size(value: Any, limit: int = MAX_TEXT) -> int:
    """At least ``len(str(value))``, exactly for text; counting stops once past ``limit``.

    Costs at most about ``limit`` steps however large ``value`` is, so it can run
    before every write and every operation that turns a value into text.
    """
    if isinstance(value, str):
        return len(value)
    if isinstance(value, _CONTAINERS):
        return _container_size(value, limit)
    return _scalar_size(value)


_CONTAINERS = (list, tuple, dict, set, frozenset)


def repr_size(value: Any, limit: int = MAX_TEXT) -> int:
    """At least ``len(repr(value))`` (as ``%r`` and ``!r`` write it)."""
    if isinstance(value, str):
        return len(value) if len(value) > limit else len(repr(value))
    return text_size(value, limit)


# Text that holds a memory address differs on every run, and so would the job's key.
WRITES_CODE = "this writes a function or method, not a value; call it with (), or read a key named like a method as m['items']"
WRITES_LAZY = "this writes a lazy sequence (its text is a memory address), not its items; add |list or |join"


def _scalar_size(value: Any) -> int:
    if isinstance(value, Undefined):
        return 0  # writing it raises the undefined error itself
    if isinstance(value, (float, bool)) or value is None:
        return 24  # the longest repr of a float, '-1.2345678901234567e-308'
    if isinstance(value, int):
        return value.bit_length() // 3 + 2  # decimal digits and sign, rounded up
    if isinstance(value, (bytes, bytearray)):
        return 4 * len(value) + 3
    if callable(value):
        raise TemplateRuntimeError(WRITES_CODE)
    if isinstance(value, Iterator):
        raise TemplateRuntimeError(WRITES_LAZY)
    return len(str(value))


def _container_size(value: Any, limit: int) -> int:
    # Python writes a container as the repr of its items: walk them, without recursion,
    # counting separators, and stop as soon as the count passes the limit.
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, dict):
            total += 2 + 4 * len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(item) + (11 if isinstance(item, (set, frozenset)) else 0)  # 'frozenset({})'
            if total <= limit:
                stack.extend(item)
        else:
            total += repr_size(item, limit)
    return total


def too_big(what: str, limit: int = MAX_TEXT, unit: str = "characters") -> SecurityError:
    """The sandbox's refusal of ``what``, which would build more than ``limit``."""
    # No sizes in the message: it is the same for every job, so it is reported once.
    return SecurityError(f"{what} would build more than {limit} {unit}")


def need(size: int, what: str) -> None:
    """Refuse to build a text of ``size`` characters when that is more than :data:`MAX_TEXT`."""
    if size > MAX_TEXT:
        raise too_big(what)


def need_items(count: int, what: str) -> None:
    """Refuse to build a list of ``count`` items when that is more than :data:`~.limits.MAX_ITEMS`."""
    if count > MAX_ITEMS:
        raise too_big(what, MAX_ITEMS, "items")


def checked(value: Any, what: str) -> Any:
    """``value``, once it is known to be within the limits of what a template may build."""
    if value.__class__ is str:
        if len(value) > MAX_TEXT:
            raise too_big(what)
    elif isinstance(value, (str, bytes)):
        need(len(value), what)
    elif isinstance(value, _CONTAINERS):
        need_items(len(value), what)
    return value


def text_arg(value: Any, what: str) -> str:
    """``str(value)`` for a filter that writes its input, refused before it is built if too long."""
    need(text_size(value), what)
    return value if isinstance(value, str) else str(value)


def width(value: Any) -> int:
    """A width or count argument as a number of characters (0 when it is not one: the call raises)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return len(value) if isinstance(value, str) else 0
    return max(value, 0)


def replaced_size(text: str | bytes, old: Any, new: Any, count: Any) -> int:
    """The length of ``text.replace(old, new, count)``, worked out without building it."""
    if not isinstance(old, type(text)) or not isinstance(new, type(text)):
        return len(text)  # the call raises TypeError
    found = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]  # old is text's type
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any = None) -> Any:
    """A call's argument by position or keyword."""
    return args[index] if len(args) > index else kwargs.get(name, default)
