"""Sandboxed Jinja for prompts, URLs and output file names.

Templates run in :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` with
:class:`~jinja2.StrictUndefined` (a missing variable is an error, never an empty
string). Immutable: no template can change a list or mapping it reads
(``vars.update(...)``, ``items.append(...)``), so one job's template cannot change
the vars, and so the request and key, of the jobs after it.

On top of Jinja's sandbox, refused before anything runs: names starting with
``_`` (``''.__class__.__mro__``), ``include``/``import``/``extends`` (there is
nothing to load), macros and loops inside loops (their work multiplies: a
template must render in bounded time), sources longer than :data:`MAX_SOURCE`
characters or nesting deeper than :data:`MAX_NESTING` levels (compiling them is
slow, or overflows the stack).

Bounded means bounded (see "Limits" below): every text a template builds, and
the text it renders, has at most :data:`MAX_TEXT` characters, and every list at
most :data:`MAX_ITEMS` items. The check runs *before* the work wherever the work
could be larger than its inputs: ``*``, ``+``, ``%`` and ``~``, format widths
(``"%999999999d"``, ``"{:>999999999}"``), the width-taking filters (``center``,
``indent``, ``wordwrap``, ``format``, ``join``, ``replace``, ``batch``,
``slice``, ``sum``...) and ``str`` methods (``zfill``, ``ljust``, ``center``,
``expandtabs``, ``join``, ``replace``, ``translate``...), slices, and every write.
Jinja folds constant expressions while compiling; the intercepted operators and
the wrapped filters are never folded, so none of this runs unchecked at compile
time either. A render has :data:`MAX_RENDER_SECONDS`; a template that ran out of
time fails at once for every later job (the error repeats, reported once), and
all compiling and rendering of one run shares :data:`MAX_TEMPLATE_SECONDS`, so a
thousand slow jobs cannot take a thousand times the bound.

A rendered request must be the same on every run, since its hash is the job's
key (a different key is a new job, paid for again). So the ``random`` filter is
gone, and writing a function or method (``{{ name.upper }}`` without ``()``) or a
lazy sequence (``{{ items|map('upper') }}``), whose text holds a memory address,
is an error. Each distinct template source is compiled once.
"""

from __future__ import annotations

import re
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import update_wrapper
from itertools import chain
from operator import itemgetter
from typing import Any, cast

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.exceptions import SecurityError, TemplateError, TemplateRuntimeError, TemplateSyntaxError, UndefinedError
from jinja2.filters import make_attrgetter
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import _PassArg, pass_context
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from ..safetext import bound

__all__ = [
    "MAX_ITEMS",
    "MAX_NESTING",
    "MAX_RENDER_SECONDS",
    "MAX_SOURCE",
    "MAX_TEMPLATE_SECONDS",
    "MAX_TEXT",
    "Renderer",
    "TemplateProblem",
    "compile_template",
    "is_template",
]

# --- Limits -------------------------------------------------------------------------------------
# The longest text a template may build or render: a prompt, URL or output file name.
# APIDot publishes no prompt limit; a prompt is a paragraph (scene, motion, style,
# audio), and 20,000 characters (some 3,000 words) is far beyond any. Small enough
# that building one costs microseconds and a campaign of them fits in memory.
MAX_TEXT = 20_000
# The longest template source. Jinja compiles about 40,000 characters a second
# (dense templates), so one source costs at most half a second to compile.
MAX_SOURCE = 20_000
# The most items a template may put in one list (``[x] * n``, ``|list``, ``|sort``):
# every CSV axis (at most 10,000 values) fits with room to spare.
MAX_ITEMS = 100_000
# Every ``{{ ... }}`` write of one render, into the output or a ``{% set %}`` block,
# and the text of loop bodies, counted together: a render writes more than its
# output only when it writes blocks it then reuses.
MAX_WRITTEN = 4 * MAX_TEXT
# Deepest expression or statement nesting: the parser and Python's compiler recurse
# per level, and 1,000 chained filters or 100 parentheses overflow the stack.
MAX_NESTING = 32
# range() in a template: one loop of at most this many steps (loops do not nest).
MAX_RANGE = 1000
# ``**`` and ``*`` on numbers: an exponent, and a result of at most this many bits
# (about 1,200 digits), so arithmetic stays microseconds however it is chained.
MAX_EXPONENT = 64
MAX_BITS = 4096
# A real template renders in microseconds; two seconds is a hang (or a hostile
# template), with room for a garbage-collector pause on a loaded machine.
MAX_RENDER_SECONDS = 2.0
# All compiling, and all rendering beyond a millisecond per job, of one run share this
# many seconds; it refills at a quarter second per second (so a long-lived process
# never runs out), so any manifest's templates cost at most about 7 s in all.
MAX_TEMPLATE_SECONDS = 5.0
_REFILL_PER_SECOND = 0.25
_FREE_RENDER_SECONDS = 0.001
# tojson's indent: deeper indentation multiplies the text by the nesting depth.
_MAX_JSON_INDENT = 16
# Compiled templates kept: by count, and by source characters (a compiled template
# holds some 50 bytes of code per source character).
_CACHE_SIZE = 4096
_CACHE_CHARS = 2_000_000
# Problem messages quote the template's values; a quoted value is cut to this.
_MAX_QUOTE = 200


class TemplateProblem(Exception):
    """A template that cannot compile or render; ``line`` is 1-based within the template."""

    def __init__(self, message: str, line: int | None = None, *, undefined: bool = False) -> None:
        super().__init__(message)
        self.message, self.line, self.undefined = message, line, undefined

    def copy(self) -> TemplateProblem:
        """The same problem as a fresh exception (no traceback from an earlier raise)."""
        return TemplateProblem(self.message, self.line, undefined=self.undefined)


# --- Time: one render's deadline and writes, one run's shared seconds ---------------------------


_SLOW_JOB = f"rendering took longer than {MAX_RENDER_SECONDS:g} s, the most one job's template may take"
_SLOW_RUN = (f"this run's templates have taken more than {MAX_TEMPLATE_SECONDS:g} s to compile and render "
             "in all; make the slow template simpler")


class _TooSlow(SecurityError):
    """A render passed its deadline: its own (``job``), or the run's."""

    def __init__(self, job: bool) -> None:
        super().__init__(_SLOW_JOB if job else _SLOW_RUN)
        self.job = job


class _Render:
    """What one render may still spend: its deadline and the characters it may still write."""

    __slots__ = ("deadline", "job", "written")

    def __init__(self, start: float, left: float) -> None:
        # The run's time left caps the job's own: no render overdraws the run by seconds.
        self.deadline, self.job, self.written = start + min(MAX_RENDER_SECONDS, left), left >= MAX_RENDER_SECONDS, 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise _TooSlow(self.job)

    def write(self, size: int) -> None:
        self.written += size
        if self.written > MAX_WRITTEN:
            raise SecurityError(f"the template writes more than {MAX_WRITTEN} characters in all (output and set blocks)")


class _Local(threading.local):
    render: _Render | None = None  # the render running on this thread (None while compiling)


_LOCAL = _Local()


def _tick() -> None:
    render = _LOCAL.render
    if render is not None:
        render.tick()


class _Bank:
    """Seconds of template work left for this run: a bucket that refills slowly.

    Approximate under threads (unlocked float updates), which is all a bound needs.
    """

    def __init__(self, capacity: float, refill: float) -> None:
        self.capacity, self.refill = capacity, refill
        self.left, self.at = capacity, time.monotonic()

    def check(self) -> tuple[float, float]:
        """``(now, seconds left)``; raise the run's problem when they are spent."""
        now = time.monotonic()
        self.left = min(self.capacity, self.left + (now - self.at) * self.refill)
        self.at = now
        if self.left <= 0:
            raise TemplateProblem(f"template refused by the sandbox: {_SLOW_RUN}")
        return now, self.left

    def spend(self, seconds: float) -> None:
        if seconds > 0:
            self.left -= seconds


_BANK = _Bank(MAX_TEMPLATE_SECONDS, _REFILL_PER_SECOND)


# --- Sizes ----------------------------------------------------------------------------------------


def _text_size(value: Any, limit: int = MAX_TEXT) -> int:
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


def _repr_size(value: Any, limit: int = MAX_TEXT) -> int:
    """At least ``len(repr(value))`` (as ``%r`` and ``!r`` write it)."""
    if isinstance(value, str):
        return len(value) if len(value) > limit else len(repr(value))
    return _text_size(value, limit)


# Text that holds a memory address differs on every run, and so would the job's key.
_WRITES_CODE = "this writes a function or method, not a value; call it with (), or read a key named like a method as m['items']"
_WRITES_LAZY = "this writes a lazy sequence (its text is a memory address), not its items; add |list or |join"


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
        raise TemplateRuntimeError(_WRITES_CODE)
    if isinstance(value, Iterator):
        raise TemplateRuntimeError(_WRITES_LAZY)
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
            total += _repr_size(item, limit)
    return total


def _too_big(what: str, limit: int = MAX_TEXT, unit: str = "characters") -> SecurityError:
    # No sizes in the message: it is the same for every job, so it is reported once.
    return SecurityError(f"{what} would build more than {limit} {unit}")


def _need(size: int, what: str) -> None:
    """Refuse to build a text of ``size`` characters when that is more than :data:`MAX_TEXT`."""
    if size > MAX_TEXT:
        raise _too_big(what)


def _need_items(count: int, what: str) -> None:
    if count > MAX_ITEMS:
        raise _too_big(what, MAX_ITEMS, "items")


def _checked(value: Any, what: str) -> Any:
    """``value``, once it is known to be within the limits of what a template may build."""
    if value.__class__ is str:
        if len(value) > MAX_TEXT:
            raise _too_big(what)
    elif isinstance(value, (str, bytes)):
        _need(len(value), what)
    elif isinstance(value, _CONTAINERS):
        _need_items(len(value), what)
    return value


def _text_arg(value: Any, what: str) -> str:
    """``str(value)`` for a filter that writes its input, refused before it is built if too long."""
    _need(_text_size(value), what)
    return value if isinstance(value, str) else str(value)


def _width(value: Any) -> int:
    """A width or count argument as a number of characters (0 when it is not one: the call raises)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return len(value) if isinstance(value, str) else 0
    return max(value, 0)


def _replaced_size(text: str | bytes, old: Any, new: Any, count: Any) -> int:
    """The length of ``text.replace(old, new, count)``, worked out without building it."""
    if not isinstance(old, type(text)) or not isinstance(new, type(text)):
        return len(text)  # the call raises TypeError
    found = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]  # old is text's type
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


# --- '%' and str.format ---------------------------------------------------------------------------

# One printf conversion: %(key)flags width .precision length type. A key with
# parentheses inside (Python allows nesting) is refused rather than parsed.
_PRINTF = re.compile(r"%(?:\((?P<key>[^()]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d*))?[hlL]?(?P<kind>.?)", re.S)
_NUMBER = re.compile(r"\d+")
# The most characters one number conversion writes before its precision: a float's
# 309 integer digits, sign and point.
_NUMBER_TEXT = 330


def _percent_size(fmt: str | bytes, args: Any) -> int:
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
        _need(max(width, prec), "'%' formatting")
        if key is not None:
            value = args.get(key) if isinstance(args, Mapping) else None
        else:
            value = values[position] if position < len(values) else None
            position += 1
        if kind in "sra":
            piece = _text_size(value) if kind == "s" else _repr_size(value)
        else:
            piece = 1 if kind == "c" else max(_text_size(value), _NUMBER_TEXT) + prec
        total += max(width, piece)
    return total * 6 if isinstance(fmt, Markup) else total  # Markup escapes what it inserts


def _check_percent(fmt: str | bytes, args: Any) -> None:
    _need(len(fmt), "'%' formatting")
    _need(_percent_size(fmt, args), "'%' formatting")


def _spec_width(spec: str) -> int:
    """The largest number in a format spec (its width or precision): what it can pad to."""
    return max((int(n) for n in _NUMBER.findall(spec)), default=0)


class _BoundedFormatter(SandboxedFormatter):
    """``str.format`` for templates: widths checked before each field, the total after."""

    built = 0

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        _need(len(format_string), "str.format()")
        self.built = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion in ("r", "a"):
            _need(_repr_size(value), "str.format()")
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        _tick()
        _need(max(_spec_width(format_spec), _text_size(value)), "str.format()")
        text = super().format_field(value, format_spec)
        self.built += len(text)
        _need(self.built, "str.format()")
        return text


class _BoundedEscapeFormatter(_BoundedFormatter, SandboxedEscapeFormatter):
    """The same, for ``Markup`` (what ``|safe`` gives): inserted values are escaped."""


# --- The sandbox ----------------------------------------------------------------------------------


_SMALL_NUMBERS = frozenset({int, float, bool})


class _Sandbox(ImmutableSandboxedEnvironment):
    # Intercepted so that they are checked, and so that constant folding cannot
    # hang compilation ({{ 9**9**9**9 }}, {{ "%999999999d" % 1 }}): Jinja never
    # folds an intercepted operator.
    intercepted_binops = frozenset({"**", "*", "%", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "+" and left.__class__ in _SMALL_NUMBERS and right.__class__ in _SMALL_NUMBERS:
            return cast(Any, left) + right  # loop.index + 1: the common case, and never large
        _tick()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_repeat(left, right)
        elif operator == "%" and isinstance(left, (str, bytes)):
            _check_percent(left, right)
        elif operator == "+":
            _check_add(left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Call from a template: deadline, sandbox, and the size checks of str methods."""
        _tick()
        if not __self.is_safe_callable(__obj):
            raise SecurityError(f"{__obj!r} is not safely callable")
        what = f".{getattr(__obj, '__name__', 'call')}()"
        owner = getattr(__obj, "__self__", None)
        # Builtin methods, and Markup's (|safe) Python ones that wrap them.
        if isinstance(owner, (str, bytes, int)) and isinstance(__obj, (types.BuiltinMethodType, types.MethodType)):
            args = _check_method(owner, __obj.__name__, args, kwargs, what)
        return _checked(__context.call(__obj, *args, **kwargs), what)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` through :class:`_BoundedFormatter` (Jinja's, bounded)."""
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
            formatter = _BoundedEscapeFormatter(self, escape=escape) if escape else _BoundedFormatter(self)
            return type(text)(formatter.vformat(text, args, kwargs))

        return update_wrapper(wrapper, value)


def _check_power(left: Any, right: Any) -> None:
    if isinstance(right, (int, float)) and (
        abs(right) > MAX_EXPONENT or (isinstance(left, int) and left.bit_length() * abs(right) > MAX_BITS)
    ):
        raise SecurityError(f"power {bound(repr(left), _MAX_QUOTE)} ** {right!r} is too large")


def _check_repeat(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):  # squaring in a row doubles the digits each time
        if left.bit_length() + right.bit_length() > MAX_BITS:
            raise SecurityError(f"a product of more than {MAX_BITS} bits is too large")
        return
    for seq, count in ((left, right), (right, left)):
        if isinstance(count, int) and count > 0:
            if isinstance(seq, (str, bytes)):
                _need(len(seq) * count, "repetition")
            elif isinstance(seq, (list, tuple)):
                _need_items(len(seq) * count, "repetition")


def _check_add(left: Any, right: Any) -> None:
    if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
        _need(len(left) + len(right), "'+'")
    elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        _need_items(len(left) + len(right), "'+'")


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any = None) -> Any:
    """A call's argument by position or keyword."""
    return args[index] if len(args) > index else kwargs.get(name, default)


def _check_method(owner: str | bytes | int, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], what: str) -> tuple[Any, ...]:
    """Refuse a ``str``/``bytes``/``int`` method call whose result would be too long; the args to call with."""
    if isinstance(owner, int):
        if name == "to_bytes":
            _need(_width(_arg(args, kwargs, 0, "length", 1)), what)
        return args
    _need(len(owner), what)  # no method work on a text longer than a template may build
    if name in ("center", "ljust", "rjust", "zfill"):
        _need(max(len(owner), _width(_arg(args, kwargs, 0, "width", 0))), what)
    elif name == "expandtabs":
        tab = "\t" if isinstance(owner, str) else b"\t"
        _need(len(owner) + owner.count(tab) * _width(_arg(args, kwargs, 0, "tabsize", 8)), what)  # type: ignore[arg-type]
    elif name == "join" and args:
        items = list(args[0])
        _need(sum(_text_size(i) for i in items) + len(owner) * max(len(items) - 1, 0), what)
        return (items, *args[1:])
    elif name == "replace" and len(args) >= 2:
        _need(_replaced_size(owner, args[0], args[1], _arg(args, kwargs, 2, "count", -1)), what)
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((_text_size(v) if isinstance(v, str) else 1 for v in args[0].values()), default=1)
        _need(len(owner) * longest, what)
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
        size = _text_size(value)  # refuses functions; up to MAX_TEXT steps, so worth a look at the clock
        _tick()
    else:
        size = len(value) if value.__class__ is str else 0  # Undefined: writing it raises
    if size > MAX_TEXT:
        raise SecurityError(f"a value it writes is longer than {MAX_TEXT} characters")
    render = _LOCAL.render
    if render is not None:  # None while Jinja folds a constant at compile time
        render.write(size)
    return value


# --- Guards the compiled template calls (put in by _Guard) ----------------------------------------


@pass_context
def _guard_iter(context: Context, iterable: Iterable[Any], text: int) -> Iterator[Any]:
    """A loop's items, checking the deadline per item and counting the loop body's text."""
    if isinstance(iterable, (str, bytes)):
        _need(len(iterable), "a loop over a text")
    render = _LOCAL.render
    for item in iterable:
        if render is not None:
            render.write(text)
            render.tick()
        yield item


@pass_context
def _guard_concat(context: Context, parts: tuple[Any, ...]) -> str:
    """``a ~ b``, refused before it is built if too long."""
    _tick()
    _need(sum([len(p) if p.__class__ is str else _text_size(p) for p in parts]), "'~'")
    return (markup_join if context.eval_ctx.autoescape else str_join)(parts)


@pass_context
def _guard_slice(context: Context, value: Any, start: Any, stop: Any, step: Any) -> Any:
    """``value[start:stop:step]``, refused before it is copied if too long."""
    if isinstance(value, (str, bytes, list, tuple)):
        try:
            size = len(range(len(value))[start:stop:step])
        except (TypeError, ValueError):
            size = 0  # the slice itself raises the right error
        (_need if isinstance(value, (str, bytes)) else _need_items)(size, "a slice")
    return value[start:stop:step]


class _Guard(NodeTransformer):
    """Routes what Jinja compiles to plain Python (loops, ``~``, slices) through the guards.

    As filters (which Jinja calls directly) named with a ``_``, which no template
    can name (:func:`_refuse_unsafe`); context filters, so never folded at compile time.
    """

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)  # in place: a For's children are replaced, the For stays
        text = sum(len(data.data) for data in node.find_all(nodes.TemplateData))
        node.iter = _guard_filter("_loop", cast(nodes.Expr, node.iter), [nodes.Const(text)])
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _guard_filter("_concat", nodes.Tuple(node.nodes, "load"), [])

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
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


# --- Filters: every one checks the deadline and its result; those that can grow check first -----


def _pre_center(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    _need(max(_text_size(value), _width(_arg(args, kwargs, 0, "width", 80))), "|center")
    return value


def _pre_indent(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    text = _text_arg(value, "|indent")
    _need(len(text) + (text.count("\n") + 1) * _width(_arg(args, kwargs, 0, "width", 4)), "|indent")
    return value


def _pre_wordwrap(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    # Each line but the last is at least half the width (it and the next word did not
    # fit together), so there are at most 2 * len / width lines per paragraph.
    text = _text_arg(value, "|wordwrap")
    width = max(_width(_arg(args, kwargs, 0, "width", 79)), 1)
    wrap = _arg(args, kwargs, 2, "wrapstring", None)
    lines = 2 * len(text) // width + text.count("\n") + 2
    _need(len(text) + lines * (1 if wrap is None else _width(wrap)), "|wordwrap")
    return value


def _pre_replace(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    text = _text_arg(value, "|replace")
    old, new = _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", "")
    _need(_replaced_size(text, str(old), str(new), _arg(args, kwargs, 2, "count", None)), "|replace")
    return value


def _pre_join(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    items = list(value)  # an attribute of an item is no longer than the item: the bound holds
    separator = _arg(args, kwargs, 0, "d", "")
    _need(sum(_text_size(item) for item in items) + _text_size(separator) * max(len(items) - 1, 0), "|join")
    return items


def _pre_format(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    _check_percent(_text_arg(value, "|format"), kwargs or args)
    return value


def _pre_tojson(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    _need(_text_size(value), "|tojson")
    indent = _arg(args, kwargs, 0, "indent", None)
    if indent is not None and _width(indent) > _MAX_JSON_INDENT:
        raise SecurityError(f"|tojson indent {_width(indent)}; at most {_MAX_JSON_INDENT}")
    return value


def _pre_urlize(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    # Each link (one per three characters at most) writes its URL twice plus its attributes.
    text = _text_arg(value, "|urlize")
    extra = 60 + sum(_text_size(_arg(args, kwargs, i, n, "")) for i, n in ((2, "target"), (3, "rel")))
    _need(3 * len(text) + (len(text) // 3 + 1) * extra, "|urlize")
    return value


def _pre_batch(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if _arg(args, kwargs, 1, "fill_with", None) is not None:  # the last batch is filled up to the count
        _need_items(_width(_arg(args, kwargs, 0, "linecount", 0)), "|batch")
    return value


def _pre_slice(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    _need_items(_width(_arg(args, kwargs, 0, "slices", 0)), "|slice")  # one list per slice, even empty
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
        _need(_text_size(value), f"|{name}")
        return value

    return check


def _guarded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
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
        _tick()
        if iterating and isinstance(value, (str, bytes)):
            _need(len(value), f"{what} over a text")
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
        return _checked(result, what)

    run.__name__ = run.__qualname__ = getattr(func, "__name__", name)
    run.__doc__ = func.__doc__  # not update_wrapper: it would copy func's pass-arg marker over run's
    return run


def _sum(environment: Any, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    """Jinja's ``sum``, but lists and tuples are joined in one pass: ``sum`` of lists is quadratic."""
    values = list(iterable)
    if attribute is not None:
        getter = make_attrgetter(environment, attribute)
        values = [getter(v) for v in values]
    if isinstance(start, (list, tuple)) and all(type(v) is type(start) for v in values):
        _need_items(len(start) + sum(len(v) for v in values), "|sum")
        return type(start)(chain(start, *values))
    if any(isinstance(v, (list, tuple, str, bytes)) for v in values):
        raise SecurityError("|sum adds numbers, or lists or tuples to a start of the same type")
    return sum(values, start)


_sum.jinja_pass_arg = _PassArg.environment  # type: ignore[attr-defined]


def _environment() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, finalize=_finalize)
    env.filters.pop("random")  # a different request, so a new job to pay for, on every run
    env.filters["sum"] = _sum
    env.filters = {name: _guarded_filter(name, func) for name, func in env.filters.items()}
    env.globals.clear()
    env.globals.update(range=_range, dict=_dict)
    env.filters.update(_loop=_guard_iter, _concat=_guard_concat, _slice=_guard_slice)
    return env


_ENV = _environment()
_GLOBALS = dict(_ENV.globals)

Renderer = Callable[[Mapping[str, Any]], str]


def is_template(source: str) -> bool:
    """Whether a string has any Jinja syntax at all (plain text renders to itself)."""
    return "{{" in source or "{%" in source or "{#" in source


_COMPILED: dict[str, Renderer | TemplateProblem] = {}
_cached_chars = 0  # source characters in _COMPILED


def compile_template(source: str) -> Renderer:
    """Compile once; return a function of the context giving the rendered text.

    Raises :class:`TemplateProblem` for syntax errors, refused constructs and
    texts over the limits. Results (problems too) are cached by source: each
    template compiles once however many jobs use it.
    """
    global _cached_chars
    found = _COMPILED.get(source)
    if found is None:
        found = _compile_timed(source)
        if len(_COMPILED) >= _CACHE_SIZE or _cached_chars > _CACHE_CHARS:
            _COMPILED.clear()
            _cached_chars = 0
        _COMPILED[source] = found
        _cached_chars += len(source)
    if isinstance(found, TemplateProblem):
        raise found.copy()
    return found


def _compile_timed(source: str) -> Renderer | TemplateProblem:
    """:func:`_compile`'s renderer or problem; its time (Jinja's parser is slow) comes out of the run's."""
    if not is_template(source):
        try:
            return _plain(source)
        except TemplateProblem as problem:
            return problem
    _BANK.check()  # not cached: the time comes back
    start = time.monotonic()
    try:
        return _compile(source)
    except TemplateProblem as problem:
        return problem
    finally:
        _BANK.spend(time.monotonic() - start)


def _plain(source: str) -> Renderer:
    text = source[:-1] if source.endswith("\n") else source  # as Jinja drops one trailing newline
    if len(text) > MAX_TEXT:
        raise TemplateProblem(_too_long())
    return lambda context: text


def _too_long() -> str:
    return f"the text is longer than {MAX_TEXT} characters, the most a prompt, URL or file name may have"


def _compile(source: str) -> Renderer:
    if len(source) > MAX_SOURCE:
        raise TemplateProblem(f"the template is {len(source)} characters long; at most {MAX_SOURCE}")
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno) from None
    except RecursionError:
        raise _too_deep() from None
    if _depth(tree) > MAX_NESTING:
        raise _too_deep()
    _refuse_unsafe(tree)
    renderer = _Jinja(tree)
    fast = _fast_path(tree, renderer)
    if fast is None:
        renderer.load()  # now: unknown filters and tests are found when Jinja compiles
        return renderer
    return fast  # Jinja compiles it only if a job needs it (three quarters of the time, saved)


def _too_deep() -> TemplateProblem:
    return TemplateProblem(f"the template nests more than {MAX_NESTING} levels deep (parentheses, filters, operators)")


def _depth(tree: nodes.Node) -> int:
    """How deep the tree nests, found without recursion (deep trees are what overflow it)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_NESTING:
            stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return deepest


class _Jinja:
    """A template rendered by Jinja, under a deadline, the run's time, and a breaker.

    Once one render has run out of time, every later one fails at once with the
    same problem: a thousand jobs sharing a slow template take one bound, not a
    thousand.
    """

    def __init__(self, tree: nodes.Template) -> None:
        self.tree: nodes.Template | None = tree
        self.root: Any = None
        self.blocks: Any = None
        self.tripped: TemplateProblem | None = None

    def load(self) -> None:
        """Guard and compile the tree (once)."""
        if self.root is None and self.tree is not None:
            tree = _Guard().visit(self.tree)
            tree.set_environment(_ENV)  # the guard's new nodes, for Jinja's constant folding
            try:
                template = _ENV.from_string(tree)
            except TemplateSyntaxError as exc:  # an unknown filter or test
                raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno) from None
            except (RecursionError, SyntaxError):
                raise _too_deep() from None
            self.root, self.blocks, self.tree = template.root_render_func, template.blocks, None

    def __call__(self, context: Mapping[str, Any]) -> str:
        if self.tripped is not None:
            raise self.tripped.copy()
        start, left = _BANK.check()
        if self.root is None:  # a fast-path template that needs Jinja after all
            try:
                self.load()
            finally:
                _BANK.spend(time.monotonic() - start)
            start, left = _BANK.check()
        previous, _LOCAL.render = _LOCAL.render, _Render(start, left)
        try:
            text = self.render(context)
        finally:
            _LOCAL.render = previous
            _BANK.spend(time.monotonic() - start - _FREE_RENDER_SECONDS)
        if len(text) > MAX_TEXT:
            raise TemplateProblem(_too_long())
        return text

    def render(self, context: Mapping[str, Any]) -> str:
        # Template.render, minus its per-call copy of a ChainMap of globals
        # (the bulk of its cost when 100,000 jobs render).
        try:
            return _ENV.concat(self.root(Context(_ENV, {**_GLOBALS, **context}, None, self.blocks)))
        except Exception:
            try:
                _ENV.handle_exception()  # re-raises with the template's line numbers
            except Exception as exc:
                problem = _problem(exc)
                if isinstance(exc, _TooSlow) and exc.job:
                    self.tripped = problem
                raise problem from None
            raise AssertionError("unreachable: handle_exception always raises") from None  # pragma: no cover


def _fast_path(tree: nodes.Template, jinja: Renderer) -> Renderer | None:
    """A renderer for the common shape "text {{ name }} text {{ name.key }}", or None.

    It gives exactly what Jinja gives (``str`` of each value, which is what ``%s``
    formats) when every name is in the context and every ``.key`` reads a key of a
    plain mapping; in any other case (a missing name, a method, a non-mapping, a
    text over the limit) it hands the call to Jinja itself, so errors and odd
    cases behave the same.
    """
    text: list[str] = []
    getters: list[Callable[[Mapping[str, Any]], Any]] = []
    for output in tree.body:
        if not isinstance(output, nodes.Output):
            return None
        for node in output.nodes:
            if isinstance(node, nodes.TemplateData):
                text.append(node.data.replace("%", "%%"))
                continue
            chain_ = _lookup_chain(node)
            if chain_ is None:
                return None
            text.append("%s")
            getters.append(_getter(chain_))
    # One %-format of a tuple is about twice as fast as joining str() of each piece.
    form = "".join(text)
    limit = MAX_TEXT

    def run(context: Mapping[str, Any]) -> str:
        try:
            out = form % tuple([get(context) for get in getters])
        except (KeyError, TypeError):
            return jinja(context)
        if len(out) > limit:
            # Building it again per job could copy megabytes each time: from now on
            # every job goes straight to Jinja, whose checks refuse huge values first.
            getters[:] = [_to_jinja]
            return jinja(context)
        return out

    return run


def _to_jinja(context: Mapping[str, Any]) -> Any:
    raise TypeError("hand this job to Jinja")


def _lookup_chain(node: nodes.Node) -> list[str] | None:
    attrs: list[str] = []
    while isinstance(node, nodes.Getattr):
        if node.attr in _DICT_ATTRIBUTES:
            return None  # Jinja would find the dict method first
        attrs.append(node.attr)
        node = node.node
    if not isinstance(node, nodes.Name) or node.ctx != "load":
        return None
    return [node.name, *reversed(attrs)]


def _getter(chain_: list[str]) -> Callable[[Mapping[str, Any]], Any]:
    """``context[name]``, then ``[key]`` into plain dicts only (TypeError otherwise)."""
    name, *attrs = chain_
    if not attrs:
        return itemgetter(name)

    def get(context: Mapping[str, Any]) -> Any:
        value = context[name]
        for attr in attrs:
            if value.__class__ is not dict:
                raise TypeError(attr)
            value = value[attr]
        return value

    return get


_DICT_ATTRIBUTES = frozenset(dir(dict))


def _problem(exc: Exception) -> TemplateProblem:
    """The user's words for an error raised while rendering: always one line, never a traceback.

    Whatever a template does wrong is the template's problem (a filter given the
    wrong type raises anything from TypeError to AttributeError); the message
    names the exception and quotes at most :data:`_MAX_QUOTE` characters of it.
    """
    line = _line(exc)
    if isinstance(exc, UndefinedError):
        return TemplateProblem(f"undefined variable: {bound(exc.message or '', _MAX_QUOTE)}", line, undefined=True)
    if isinstance(exc, SecurityError):
        return TemplateProblem(f"template refused by the sandbox: {bound(str(exc), _MAX_QUOTE)}", line)
    if isinstance(exc, TemplateError):
        return TemplateProblem(f"template error: {bound(str(exc), _MAX_QUOTE)}", line)
    if isinstance(exc, RecursionError):
        return TemplateProblem("template error: the template nests too deeply", line)
    if isinstance(exc, MemoryError):
        return TemplateProblem("template error: the text it builds does not fit in memory", line)
    return TemplateProblem(f"template error: {type(exc).__name__}: {bound(str(exc), _MAX_QUOTE)}", line)


def _refuse_unsafe(tree: nodes.Template) -> None:
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
    arg = node.arg  # type: ignore[attr-defined]
    return arg.value if isinstance(arg, nodes.Const) else None


def _line(exc: BaseException) -> int | None:
    # Jinja rewrites tracebacks so frames of the template carry its line numbers.
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
