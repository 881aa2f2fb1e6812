"""``%`` and ``str.format`` in templates: widths and precisions checked before anything is built.

``"%999999999d" % 1`` and ``"{:>999999999}".format(1)`` would build a gigabyte; here
the size of the result is worked out from the format and the values first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEscapeFormatter, SandboxedFormatter
from markupsafe import Markup

from .deadline import tick
from .sizes import need, repr_size, text_size

__all__ = ["BoundedEscapeFormatter", "BoundedFormatter", "check_percent", "percent_size", "spec_width"]

# One printf conversion: %(key)flags width .precision length type. A key with
# parentheses inside (Python allows nesting) is refused rather than parsed.
_PRINTF = re.compile(r"%(?:\((?P<key>[^()]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d*))?[hlL]?(?P<kind>.?)", re.S)
_NUMBER = re.compile(r"\d+")
# The most characters one number conversion writes before its precision: a float's
# 309 integer digits, sign and point.
_NUMBER_TEXT = 330


def percent_size(fmt: str | bytes, args: Any) -> int:
    """At least ``len(fmt % args)``; refuses huge widths and precisions before anything is built."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    values = list(args) if isinstance(args, tuple) else [args]
    total, position = len(text), 0
    for match in _PRINTF.finditer(text):
        kind, key = match["kind"], match["key"]
        if kind == "%" or not kind:
            continue
        if kind == "(" or "*" in ((match["width"] or "") + (match["prec"] or "")):
            raise SecurityError("'%' formatting with '*' widths or nested parentheses in a key is not allowed in templates")
        width, prec = int(match["width"] or 0), int(match["prec"] or 0)
        need(max(width, prec), "'%' formatting")
        if key is not None:
            value = args.get(key) if isinstance(args, Mapping) else None
        else:
            value = values[position] if position < len(values) else None
            position += 1
        if kind in "sra":
            piece = text_size(value) if kind == "s" else repr_size(value)
        else:
            piece = 1 if kind == "c" else max(text_size(value), _NUMBER_TEXT) + prec
        total += max(width, piece)
    return total * 6 if isinstance(fmt, Markup) else total  # Markup escapes what it inserts


def check_percent(fmt: str | bytes, args: Any) -> None:
    """Refuse ``fmt % args`` before it is built when the result would be too long."""
    need(len(fmt), "'%' formatting")
    need(percent_size(fmt, args), "'%' formatting")


def spec_width(spec: str) -> int:
    """The largest number in a format spec (its width or precision): what it can pad to."""
    return max((int(n) for n in _NUMBER.findall(spec)), default=0)


class BoundedFormatter(SandboxedFormatter):
    """``str.format`` for templates: widths checked before each field, the total after."""

    built = 0

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        """The formatted text, its format refused first when too long."""
        need(len(format_string), "str.format()")
        self.built = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        """``!r``/``!a``, refused before the repr is built when too long."""
        if conversion in ("r", "a"):
            need(repr_size(value), "str.format()")
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        """One field, its width checked first and the total after."""
        tick()
        need(max(spec_width(format_spec), text_size(value)), "str.format()")
        text = super().format_field(value, format_spec)
        self.built += len(text)
        need(self.built, "str.format()")
        return text


class BoundedEscapeFormatter(BoundedFormatter, SandboxedEscapeFormatter):
    """The same, for ``Markup`` (what ``|safe`` gives): inserted values are escaped."""
