"""YAML with source positions, safe against hostile input.

Why not ``yaml.safe_load``: it forgets where values were written, turns ``16:9``
into 969 and ``no`` into False (YAML 1.1), silently keeps the last of two equal
keys, and expands alias bombs ("billion laughs") without limit. Here the C
parser's event stream is turned into plain data directly, in one iterative pass:

- scalars resolve by the YAML 1.2 core schema (``true``/``false`` only; no
  sexagesimal numbers, no timestamps: ``16:9`` stays a string), except that
  ``.nan``, ``.inf`` and numbers too large for a float are refused: a budget or
  threshold of NaN would compare false with everything and silently not apply;
- whole numbers beyond 64 bits are refused before Python converts them (past
  4,300 digits it refuses, with a traceback, and no manifest count, seed or
  amount means anything that large): :func:`bounded_int`;
- nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_NODES` nodes,
  recursive aliases and aliases repeating more than :data:`MAX_ALIAS_NODES` nodes
  in total fail at once, before any memory or time is spent on them;
- a lone surrogate (``"\\uD800"``: text no file, terminal or JSON encoder can
  write) and a raw control character are refused with their line and column;
- a duplicate key is an error; ``<<`` merge keys work as usual;
- every node keeps its line and column in a :class:`Pos` tree for error messages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from ..safetext import bound

__all__ = [
    "INT_MAX", "INT_MIN", "MAX_ALIAS_NODES", "MAX_DEPTH", "MAX_NODES", "SURROGATE_PROBLEM", "Pos", "YamlProblem",
    "bounded_int", "int_problem", "load_yaml", "shown",
]

MAX_DEPTH = 100
MAX_ALIAS_NODES = 100_000
# Nodes (scalars, lists, mappings) written in one file. A real manifest has a few
# thousand, a 10,000-row data file of 10 columns 210,000; each costs 4-8 us and ~150
# bytes to build, so this keeps any file within ~2 s and ~50 MB.
MAX_NODES = 250_000
# Whole numbers a manifest may hold: signed 64 bits, like every database and JSON
# consumer downstream. Larger ones mean nothing here and cost Python quadratic time.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# Digits (leading zeros aside) that may still fit in 64 bits, per base; and lengths
# that always fit, which skip the checks (most numbers in a manifest are short).
_MAX_DIGITS = {10: 19, 8: 21, 16: 16}
_ALWAYS_FITS = {10: 18, 8: 21, 16: 15}
# How much of a hostile value an error message quotes.
MAX_SHOWN = 60

# Only the parser's event stream is used, never a constructor: the C one when built.
_Parser: Callable[[str], Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_SPECIAL = {
    "true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False,
    "null": None, "Null": None, "NULL": None, "~": None, "": None,
    ".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf"),
    "+.inf": float("inf"), "+.Inf": float("inf"), "+.INF": float("inf"),
    "-.inf": float("-inf"), "-.Inf": float("-inf"), "-.INF": float("-inf"),
    ".nan": float("nan"), ".NaN": float("nan"), ".NAN": float("nan"),
}
# A plain scalar starting with anything else is a string: one set lookup for most values.
_MAYBE_TYPED = frozenset("-+.0123456789tTfFnN~")
_STD = "tag:yaml.org,2002:"
_SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_PROBLEM = "a \\u escape names half of a surrogate pair, not a character; write the character itself"


def shown(value: Any) -> str:
    """``repr(value)`` cut to :data:`MAX_SHOWN` characters, for quoting hostile input in a message."""
    return bound(repr(value), MAX_SHOWN)


def bounded_int(digits: str, base: int = 10) -> int | None:
    """``int(digits, base)`` when it fits in 64 bits (signed), else None.

    The length is checked first, so a 10 MB number costs nothing (``int`` itself is
    quadratic, and refuses more than 4,300 decimal digits with a ValueError).
    """
    if len(digits) <= _ALWAYS_FITS[base]:
        return int(digits, base)
    if len(digits.lstrip("+-").lstrip("0")) > _MAX_DIGITS[base]:
        return None
    value = int(digits, base)
    return value if INT_MIN <= value <= INT_MAX else None


def int_problem(text: str) -> str:
    """The message for a whole number beyond 64 bits, quoting (a bounded part of) ``text``."""
    return f"whole number {shown(text)} is beyond 64 bits; manifests take whole numbers from {INT_MIN} to {INT_MAX}"


class YamlProblem(Exception):
    """Malformed or hostile YAML: ``message`` at 1-based ``line``/``col``."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None) -> None:
        super().__init__(message)
        self.message, self.line, self.col = message, line, col


class Pos:
    """Where a node was written; ``items`` holds its children's positions.

    A mapping's ``items`` is ``{key: (key_line, key_col, Pos)}``, a sequence's a
    list of :class:`Pos`, a scalar's None. (Line and column are None only for an
    event the parser gave no position, which libyaml never does.)
    """

    __slots__ = ("col", "items", "line")

    def __init__(self, line: int | None, col: int | None, items: Any = None) -> None:
        self.line, self.col, self.items = line, col, items


@dataclass(slots=True)
class _Open:
    """A collection being built: its value, positions, anchor and size so far."""

    value: Any
    pos: Pos
    anchor: str | None
    size: int = 1
    key: Any = None
    key_mark: tuple[int | None, int | None] | None = None
    has_key: bool = False
    merges: list[tuple[Any, Pos]] | None = None


def load_yaml(text: str) -> tuple[Any, Pos | None]:
    """Parse one YAML document into plain data and its position tree.

    Raises :class:`YamlProblem` for syntax errors, several documents, unsupported
    tags, duplicate keys and hostile structures. An empty document gives ``None``.
    """
    try:
        return _Builder().run(_Parser(text))
    except yaml.reader.ReaderError as exc:
        raise _reader_problem(text, exc) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "malformed YAML"
        if "nesting depth" in problem:  # PyYAML >= 6.0.4 has a limit of its own, met first on long lines
            raise YamlProblem(f"nesting deeper than {MAX_DEPTH} levels", *_line_col(mark)) from None
        raise YamlProblem(f"YAML syntax error: {problem}", *_line_col(mark)) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"YAML syntax error: {exc}") from None
    except UnicodeEncodeError as exc:  # libyaml reads UTF-8: text given here with a lone surrogate
        raise YamlProblem("a lone surrogate (half of a pair) is not a character; write the character itself",
                          *_offset_line_col(text, exc.start)) from None
    except ValueError as exc:  # the pure-Python scanner's chr() on an escape past U+10FFFF
        raise YamlProblem(f"YAML syntax error: {exc}") from None


def _line_col(mark: Any) -> tuple[int | None, int | None]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (None, None)


def _reader_problem(text: str, exc: Any) -> YamlProblem:
    """A character YAML does not allow (NUL, other controls), at its line and column."""
    index = exc.position
    if _Parser is not yaml.SafeLoader:  # libyaml counts UTF-8 bytes, the Python reader characters
        index = len(text.encode("utf-8", "surrogatepass")[:index].decode("utf-8", "ignore"))
    code = ord(text[index]) if index < len(text) else exc.character
    return YamlProblem(
        f"character U+{code:04X} is not allowed in YAML (control characters and non-characters are not); remove it",
        *_offset_line_col(text, index),
    )


def _offset_line_col(text: str, index: int) -> tuple[int, int]:
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


class _Builder:
    """Turns parser events into data, one event at a time (no recursion)."""

    def __init__(self) -> None:
        self.stack: list[_Open] = []
        self.anchors: dict[str, tuple[Any, Pos, int]] = {}
        self.alias_nodes = 0
        self.nodes = 0
        self.result: tuple[Any, Pos | None] = (None, None)
        self.documents = 0

    def run(self, parser: Any) -> tuple[Any, Pos | None]:
        handlers = {
            yaml.ScalarEvent: self.scalar, yaml.AliasEvent: self.alias,
            yaml.MappingStartEvent: self.start_mapping, yaml.SequenceStartEvent: self.start_sequence,
            yaml.MappingEndEvent: self.end, yaml.SequenceEndEvent: self.end,
            yaml.DocumentStartEvent: self.start_document,
        }
        try:
            while True:
                event = parser.get_event()
                if event is None or isinstance(event, yaml.StreamEndEvent):
                    return self.result
                handler = handlers.get(type(event))
                if handler is not None:
                    handler(event)
        finally:
            dispose = getattr(parser, "dispose", None)
            if dispose is not None:
                dispose()

    def start_document(self, event: Any) -> None:
        self.documents += 1
        if self.documents > 1:
            raise YamlProblem(
                "several YAML documents ('---') in one file; a manifest is one document", *_line_col(event.start_mark)
            )

    def scalar(self, event: Any) -> None:
        line, col = _line_col(event.start_mark)
        if _SURROGATE.search(event.value):  # libyaml refuses these escapes; PyYAML's Python scanner does not
            raise YamlProblem(SURROGATE_PROBLEM, line, col)
        value = _resolve(event)
        merge = event.value == "<<" and event.tag is None and event.implicit[0]
        self.add(value, Pos(line, col), 1, event.anchor, merge)

    def alias(self, event: Any) -> None:
        line, col = _line_col(event.start_mark)
        if event.anchor not in self.anchors:
            if any(o.anchor == event.anchor for o in self.stack):
                raise YamlProblem(f"recursive alias *{bound(event.anchor, MAX_SHOWN)} refers to a node that contains it", line, col)
            raise YamlProblem(f"alias *{bound(event.anchor, MAX_SHOWN)} names no anchor defined before it", line, col)
        value, pos, size = self.anchors[event.anchor]
        # Shared Python objects keep memory flat, but every later walk (schema
        # validation, expansion) pays for the expanded size: bound that instead.
        self.alias_nodes += size
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise YamlProblem(
                f"aliases repeat more than {MAX_ALIAS_NODES} nodes in total (an alias bomb?); "
                "write the data out, or use fewer and smaller aliases", line, col,
            )
        self.add(value, Pos(line, col, pos.items), size, None)

    def start_mapping(self, event: Any) -> None:
        self.open(event, {}, {})

    def start_sequence(self, event: Any) -> None:
        self.open(event, [], [])

    def open(self, event: Any, value: Any, items: Any) -> None:
        tag = event.tag
        expected = _STD + ("map" if isinstance(value, dict) else "seq")
        line, col = _line_col(event.start_mark)
        if tag not in (None, "!", expected):
            raise YamlProblem(f"unsupported YAML tag {shown(tag)}; manifests use plain data only", line, col)
        if len(self.stack) >= MAX_DEPTH:
            raise YamlProblem(f"nesting deeper than {MAX_DEPTH} levels", line, col)
        self.stack.append(_Open(value, Pos(line, col, items), event.anchor))

    def end(self, event: Any) -> None:
        done = self.stack.pop()
        if done.merges:
            _apply_merges(done)
        self.add(done.value, done.pos, done.size, done.anchor)

    def add(self, value: Any, pos: Pos, size: int, anchor: str | None, merge: bool = False) -> None:
        """Attach a finished node to the open collection (or make it the document)."""
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise YamlProblem(f"more than {MAX_NODES} values in one file; split it or trim it", pos.line, pos.col)
        if anchor is not None:
            self.anchors[anchor] = (value, pos, size)
        if not self.stack:
            self.result = (value, pos)
            return
        parent = self.stack[-1]
        parent.size += size
        if isinstance(parent.value, list):
            parent.value.append(value)
            parent.pos.items.append(pos)
        elif not parent.has_key:
            self.take_key(parent, value, pos, merge)
        else:
            self.put(parent, value, pos)

    def take_key(self, parent: _Open, key: Any, pos: Pos, merge: bool) -> None:
        if isinstance(key, (dict, list)):
            raise YamlProblem("a mapping key must be a plain value, not a list or mapping", pos.line, pos.col)
        if isinstance(key, float) and key != key:
            raise YamlProblem("a mapping key cannot be NaN", pos.line, pos.col)
        parent.key, parent.key_mark, parent.has_key = (_MERGE if merge else key), (pos.line, pos.col), True

    def put(self, parent: _Open, value: Any, pos: Pos) -> None:
        key, (line, col) = parent.key, parent.key_mark  # type: ignore[misc]
        parent.has_key = False
        if key is _MERGE:
            parent.merges = (parent.merges or []) + _merge_sources(value, pos, line, col)
            return
        if key in parent.value:
            first = parent.pos.items[key]
            raise YamlProblem(f"duplicate key {shown(key)} (first written on line {first[0]}); keep one", line, col)
        parent.value[key] = value
        parent.pos.items[key] = (line, col, pos)


_MERGE = object()


def _merge_sources(value: Any, pos: Pos, line: int | None, col: int | None) -> list[tuple[Any, Pos]]:
    if isinstance(value, dict):
        return [(value, pos)]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return list(zip(value, pos.items, strict=False))
    raise YamlProblem("'<<' merges a mapping or a list of mappings", line, col)


def _apply_merges(done: _Open) -> None:
    # Explicit keys win over merged ones; earlier merge sources win over later ones.
    merged: dict[Any, Any] = {}
    items: dict[Any, Any] = {}
    for source, source_pos in reversed(done.merges or []):
        merged.update(source)
        items.update(source_pos.items)
    merged.update(done.value)
    items.update(done.pos.items)
    done.value.clear()
    done.value.update(merged)
    done.pos.items.clear()
    done.pos.items.update(items)


def _resolve(event: Any) -> Any:
    """A scalar's value under the YAML 1.2 core schema (quoted scalars stay strings), finite."""
    value = _typed(event)
    if value.__class__ is float and not math.isfinite(value):
        raise YamlProblem(
            f"{shown(event.value)} is not a finite number; manifests take finite numbers only", *_line_col(event.start_mark)
        )
    return value


def _typed(event: Any) -> Any:
    value, tag = event.value, event.tag
    if tag is None:
        return _plain(value, event) if event.implicit[0] else value
    if tag in ("!", _STD + "str"):
        return value
    kind = tag.removeprefix(_STD)
    if kind in ("int", "float", "bool", "null"):
        typed = _plain(value, event)
        if kind == "float" and type(typed) is int:
            return float(typed)
        if _type_name(typed) == kind:
            return typed
        raise YamlProblem(f"{shown(value)} is not a valid {kind}", *_line_col(event.start_mark))
    raise YamlProblem(f"unsupported YAML tag {shown(tag)}; manifests use plain data only", *_line_col(event.start_mark))


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return "int" if isinstance(value, int) else "float" if isinstance(value, float) else "str"


def _plain(value: str, event: Any) -> Any:
    if value and value[0] not in _MAYBE_TYPED:
        return value
    if value in _SPECIAL:
        return _SPECIAL[value]
    if _INT.fullmatch(value):
        prefixed = value.startswith(("0o", "0x"))
        number = bounded_int(value[2:], 8 if value[1] == "o" else 16) if prefixed else bounded_int(value)
        if number is None:
            raise YamlProblem(int_problem(value), *_line_col(event.start_mark))
        return number
    if _FLOAT.fullmatch(value):
        return float(value)
    return value
