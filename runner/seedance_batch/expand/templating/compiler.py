"""Compiling a template source, once: plain text, the fast path, or Jinja; and the cache.

Each distinct source compiles once per process, however many jobs and
expansions use it (results and problems alike are cached by source, bounded by
count and characters); the time compiling takes comes out of the running
expansion's budget (:mod:`.budget`). Jinja is imported on the first template that
needs it (:mod:`.full`): plain text and the fast path's shape need none of it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .budget import current_budget
from .fastpath import Renderer, runner, simple_pieces
from .limits import MAX_SOURCE, MAX_TEXT, TemplateProblem, too_long

__all__ = ["compile_template", "is_template"]

# Compiled templates kept: by count, and by source characters (a compiled template
# holds some 50 bytes of code per source character).
_CACHE_SIZE = 4096
_CACHE_CHARS = 2_000_000


class _Cache:
    """Compiled templates (and problems) by source; emptied whole when past its bounds."""

    def __init__(self) -> None:
        self.found: dict[str, Renderer | TemplateProblem] = {}
        self.chars = 0

    def add(self, source: str, compiled: Renderer | TemplateProblem) -> None:
        if len(self.found) >= _CACHE_SIZE or self.chars > _CACHE_CHARS:
            self.found.clear()
            self.chars = 0
        self.found[source] = compiled
        self.chars += len(source)


_COMPILED = _Cache()


def is_template(source: str) -> bool:
    """Whether a string has any Jinja syntax at all (plain text renders to itself)."""
    return "{{" in source or "{%" in source or "{#" in source


def compile_template(source: str) -> Renderer:
    """Compile once; return a function of the context giving the rendered text.

    Raises :class:`~.limits.TemplateProblem` for syntax errors, refused constructs
    and texts over the limits. Results (problems too) are cached by source: each
    template compiles once however many jobs use it.
    """
    found = _COMPILED.found.get(source)
    if found is None:
        found = _compile_timed(source)
        _COMPILED.add(source, found)
    if isinstance(found, TemplateProblem):
        raise found.copy()
    return found


def _compile_timed(source: str) -> Renderer | TemplateProblem:
    """The renderer or problem of ``source``; its time (Jinja's parser is slow) comes out of the budget."""
    if not is_template(source):
        try:
            return _plain(source)
        except TemplateProblem as problem:
            return problem
    budget = current_budget()
    budget.check()  # raises outside the try: a spent budget is not cached, the next expansion has time
    start = time.monotonic()
    try:
        return _compile(source)
    except TemplateProblem as problem:
        return problem
    finally:
        budget.spend(time.monotonic() - start)


def _plain(source: str) -> Renderer:
    text = source[:-1] if source.endswith("\n") else source  # as Jinja drops one trailing newline
    if len(text) > MAX_TEXT:
        raise TemplateProblem(too_long())
    return lambda context: text


def _compile(source: str) -> Renderer:
    pieces = simple_pieces(source) if len(source) <= MAX_SOURCE else None
    if pieces is not None:
        return runner(pieces, _JinjaLater(source))
    from .full import compile_jinja  # the first template that needs Jinja loads it

    return compile_jinja(source)


class _JinjaLater:
    """Jinja's renderer of a fast-path template, made the first time a job needs it."""

    __slots__ = ("renderer", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.renderer: Renderer | None = None

    def __call__(self, context: Mapping[str, Any]) -> str:
        if self.renderer is None:
            from .full import jinja_renderer

            self.renderer = jinja_renderer(self.source)
        return self.renderer(context)
