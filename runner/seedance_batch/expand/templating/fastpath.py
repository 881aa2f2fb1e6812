"""The fast path: "text {{ name }} text {{ name.key }}", formatted without Jinja.

Most prompts and file names have this shape; formatting them with one ``%`` of a
tuple is several times faster than a Jinja render, and gives exactly what Jinja
would (``str`` of each value, which is what ``%s`` formats) when every name is in
the context and every ``.key`` reads a key of a plain mapping. In any other case
(a missing name, a method, a non-mapping, a text over the limit) the call goes to
Jinja itself, so errors and odd cases behave the same.

:func:`simple_pieces` finds the shape in the source itself, so a manifest whose
templates all have it never loads Jinja (``validate`` starts that much faster). It
accepts only what Jinja's lexer and parser read in one way: plain ASCII names that
are not Jinja's constants or keywords, spaces or tabs inside the braces, no
carriage return (Jinja rewrites newlines in text), and drops one trailing newline
as Jinja does. Anything else is compiled by Jinja, whose tree may still have the
shape (:func:`runner` serves both).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any

from .limits import MAX_TEXT

__all__ = ["DICT_ATTRIBUTES", "Piece", "Renderer", "runner", "simple_pieces"]

Renderer = Callable[[Mapping[str, Any]], str]
# Text as it is, or a lookup: a name and the keys read after it (``locale.language``).
Piece = str | list[str]
# Attribute names Jinja finds on a dict before its keys ({{ m.items }} is the method).
DICT_ATTRIBUTES = frozenset(dir(dict))
_OPENING = re.compile(r"\{[{%#]")
_NAME = r"[A-Za-z][A-Za-z0-9_]*"
_LOOKUP = re.compile(rf"\{{\{{[ \t]*({_NAME}(?:\.{_NAME})*)[ \t]*\}}\}}")
# Names Jinja's parser reads as something else than a variable (constants, operators, tests).
_JINJA_WORDS = frozenset({
    "true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if", "else", "elif",
    "for", "recursive", "with", "without", "context", "import", "from", "as", "ignore", "missing", "block",
})


def simple_pieces(source: str) -> list[Piece] | None:
    """The pieces of a template of the fast path's shape, read from its source; None when it is not one."""
    if "\r" in source:
        return None
    text = source[:-1] if source.endswith("\n") else source  # as Jinja drops one trailing newline
    pieces: list[Piece] = []
    at = 0
    while (opening := _OPENING.search(text, at)) is not None:
        lookup = _LOOKUP.match(text, opening.start())
        if lookup is None:
            return None
        chain = lookup.group(1).split(".")
        if chain[0] in _JINJA_WORDS or any(attr in DICT_ATTRIBUTES for attr in chain[1:]):
            return None
        if opening.start() > at:
            pieces.append(text[at:opening.start()])
        pieces.append(chain)
        at = lookup.end()
    if at < len(text):
        pieces.append(text[at:])
    return pieces


def runner(pieces: list[Piece], jinja: Renderer) -> Renderer:
    """The fast renderer of ``pieces``; ``jinja`` renders whatever it cannot."""
    text: list[str] = []
    getters: list[Callable[[Mapping[str, Any]], Any]] = []
    for piece in pieces:
        if isinstance(piece, str):
            text.append(piece.replace("%", "%%"))
        else:
            text.append("%s")
            getters.append(_getter(piece))
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
