"""Sandboxed Jinja for prompts, URLs and output file names.

Templates run in :class:`jinja2.sandbox.SandboxedEnvironment` with
:class:`~jinja2.StrictUndefined` (a missing variable is an error, never an empty
string). On top of Jinja's sandbox, refused before anything runs:
names starting with ``_`` (``''.__class__.__mro__``), ``include``/``import``/
``extends`` (there is nothing to load), macros and loops inside loops (their
work multiplies: a template must render in bounded time), and, while running, ``**`` and ``*`` that
would build huge numbers or strings; ``range`` stops at 1000.

A rendered request must be the same on every run, since its hash is the job's
key (a different key is a new job, paid for again). So the ``random`` filter is
gone, and writing a function or method (``{{ name.upper }}`` without ``()``),
whose text holds a memory address, is an error.
Each distinct template source is compiled once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.runtime import Context
from jinja2.exceptions import SecurityError, TemplateError, TemplateRuntimeError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["TemplateProblem", "Renderer", "compile_template", "is_template"]

MAX_RANGE = 1000
MAX_REPEAT = 100_000
MAX_EXPONENT = 64
MAX_BITS = 4096


class TemplateProblem(Exception):
    """A template that cannot compile or render; ``line`` is 1-based within the template."""

    def __init__(self, message: str, line: int | None = None, *, undefined: bool = False) -> None:
        super().__init__(message)
        self.message, self.line, self.undefined = message, line, undefined


class _Sandbox(SandboxedEnvironment):
    # Intercepted so that constant folding cannot hang compilation ({{ 9**9**9**9 }}).
    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)):
            if abs(right) > MAX_EXPONENT or (isinstance(left, int) and left.bit_length() * abs(right) > MAX_BITS):
                raise SecurityError(f"power {left!r} ** {right!r} is too large")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and len(seq) * count > MAX_REPEAT:
                    raise SecurityError(f"repetition would build more than {MAX_REPEAT} items")
        return super().call_binop(context, operator, left, right)


def _range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise SecurityError(f"range of {len(result)} items; at most {MAX_RANGE}")
    return result


def _finalize(value: Any) -> Any:
    """Refuse to write a function: its text (``<built-in method ... at 0x7f...>``) differs per run."""
    if callable(value) and not isinstance(value, Undefined):
        raise TemplateRuntimeError("this writes a function or method, not a value; call it with (), or read a key named like a method as m['items']")
    return value


_ENV = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, finalize=_finalize)
_ENV.filters.pop("random")  # a different request, so a new job to pay for, on every run
_ENV.globals.clear()
_ENV.globals.update(range=_range, dict=dict)
_GLOBALS = dict(_ENV.globals)

Renderer = Callable[[Mapping[str, Any]], str]


def is_template(source: str) -> bool:
    """Whether a string has any Jinja syntax at all (plain text renders to itself)."""
    return "{{" in source or "{%" in source or "{#" in source


_COMPILED: dict[str, Renderer | TemplateProblem] = {}
_CACHE_SIZE = 4096


def compile_template(source: str) -> Renderer:
    """Compile once; return a function of the context giving the rendered text.

    Raises :class:`TemplateProblem` for syntax errors and refused constructs.
    Results (problems too) are cached by source: each template compiles once
    however many jobs use it.
    """
    found = _COMPILED.get(source)
    if found is None:
        if len(_COMPILED) >= _CACHE_SIZE:
            _COMPILED.clear()
        try:
            found = _compile(source)
        except TemplateProblem as problem:
            found = problem
        _COMPILED[source] = found
    if isinstance(found, TemplateProblem):
        raise TemplateProblem(found.message, found.line, undefined=found.undefined)
    return found


def _compile(source: str) -> Renderer:
    if not is_template(source):
        text = source[:-1] if source.endswith("\n") else source  # as Jinja drops one trailing newline
        return lambda context: text
    try:
        tree = _ENV.parse(source)
        _refuse_unsafe(tree)
        template = _ENV.from_string(tree)  # also where an unknown filter or test is found
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno) from None
    root, blocks, concat = template.root_render_func, template.blocks, _ENV.concat

    def jinja(context: Mapping[str, Any]) -> str:
        # Template.render, minus its per-call copy of a ChainMap of globals
        # (the bulk of its cost when 100,000 jobs render).
        try:
            return concat(root(Context(_ENV, {**_GLOBALS, **context}, None, blocks)))  # type: ignore[arg-type]
        except Exception:
            try:
                _ENV.handle_exception()  # re-raises with the template's line numbers
            except Exception as exc:
                raise _problem(exc) from None
            raise AssertionError("unreachable: handle_exception always raises")  # pragma: no cover

    return _fast_path(tree, jinja) or jinja


def _fast_path(tree: nodes.Template, jinja: Renderer) -> Renderer | None:
    """A renderer for the common shape "text {{ name }} text {{ name.key }}", or None.

    It gives exactly what Jinja gives (``str`` of each value, which is what ``%s``
    formats) when every name is in the context and every ``.key`` reads a key of a
    plain mapping; in any other case (a missing name, a method, a non-mapping) it
    hands the call to Jinja itself, so errors and odd cases behave the same.
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
            chain = _lookup_chain(node)
            if chain is None:
                return None
            text.append("%s")
            getters.append(_getter(chain))
    # One %-format of a tuple is about twice as fast as joining str() of each piece.
    form = "".join(text)

    def run(context: Mapping[str, Any]) -> str:
        try:
            return form % tuple([get(context) for get in getters])
        except (KeyError, TypeError):
            return jinja(context)

    return run


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


def _getter(chain: list[str]) -> Callable[[Mapping[str, Any]], Any]:
    """``context[name]``, then ``[key]`` into plain dicts only (TypeError otherwise)."""
    name, *attrs = chain
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
    """The user's words for an error raised while rendering; anything else is a bug."""
    line = _line(exc)
    if isinstance(exc, UndefinedError):
        return TemplateProblem(f"undefined variable: {exc.message}", line, undefined=True)
    if isinstance(exc, SecurityError):
        return TemplateProblem(f"template refused by the sandbox: {exc}", line)
    if isinstance(exc, TemplateError):
        return TemplateProblem(f"template error: {exc}", line)
    if isinstance(exc, (TypeError, ValueError, ArithmeticError, LookupError)):
        return TemplateProblem(f"template error: {type(exc).__name__}: {exc}", line)
    if isinstance(exc, RecursionError):
        return TemplateProblem("template error: the template nests too deeply", line)
    if isinstance(exc, MemoryError):
        return TemplateProblem("template error: the text it builds does not fit in memory", line)
    raise exc


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
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        name = _name_of(node)
        if isinstance(name, str) and name.startswith("_"):
            raise TemplateProblem(
                f"template uses {name!r}; names starting with '_' are not allowed (sandbox)", node.lineno
            )


def _name_of(node: nodes.Node) -> Any:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Name):
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
