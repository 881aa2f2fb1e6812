"""A template rendered by Jinja: under its deadline, its expansion's seconds, and the breaker.

Every error a render raises becomes one :class:`~.limits.TemplateProblem` in the
user's words (:func:`problem_of`): never a traceback, whatever the template does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.runtime import Context

from ...safetext import bound
from .budget import FREE_RENDER_SECONDS, TemplateBudget, current_budget
from .deadline import LOCAL, Render, TooSlow
from .guards import Guard
from .limits import MAX_NESTING, MAX_QUOTE, MAX_TEXT, TemplateProblem, too_long
from .sandbox import ENV, GLOBALS

__all__ = ["JinjaRenderer", "problem_of", "too_deep"]


class JinjaRenderer:
    """A template rendered by Jinja, under a deadline, its expansion's time, and a breaker.

    Once one render has run out of time, every later one of the same expansion fails
    at once with the same problem: a thousand jobs sharing a slow template take one
    bound, not a thousand.
    """

    def __init__(self, tree: nodes.Template) -> None:
        self.tree: nodes.Template | None = tree
        self.root: Any = None
        self.blocks: Any = None

    def load(self) -> None:
        """Guard and compile the tree (once)."""
        if self.root is None and self.tree is not None:
            tree = Guard().visit(self.tree)
            tree.set_environment(ENV)  # the guard's new nodes, for Jinja's constant folding
            try:
                template = ENV.from_string(tree)
            except TemplateSyntaxError as exc:  # an unknown filter or test
                raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno) from None
            except (RecursionError, SyntaxError):
                raise too_deep() from None
            self.root, self.blocks, self.tree = template.root_render_func, template.blocks, None

    def __call__(self, context: Mapping[str, Any]) -> str:
        budget = current_budget()
        tripped = budget.tripped.get(self)
        if tripped is not None:
            raise tripped.copy()
        start, left = budget.check()
        if self.root is None:  # a fast-path template that needs Jinja after all
            try:
                self.load()
            finally:
                budget.spend(time.monotonic() - start)
            start, left = budget.check()
        previous, LOCAL.render = LOCAL.render, Render(budget, start, left)
        try:
            text = self.render(context, budget)
        finally:
            LOCAL.render = previous
            budget.spend(time.monotonic() - start - FREE_RENDER_SECONDS)
        if len(text) > MAX_TEXT:
            raise TemplateProblem(too_long())
        return text

    def render(self, context: Mapping[str, Any], budget: TemplateBudget) -> str:
        """The text, or the problem (a job's own timeout trips the breaker)."""
        # Template.render, minus its per-call copy of a ChainMap of globals
        # (the bulk of its cost when 100,000 jobs render).
        try:
            return ENV.concat(self.root(Context(ENV, {**GLOBALS, **context}, None, self.blocks)))
        except Exception:
            try:
                ENV.handle_exception()  # re-raises with the template's line numbers
            except Exception as exc:
                problem = problem_of(exc)
                if isinstance(exc, TooSlow) and exc.job:
                    budget.trip(self, problem)
                raise problem from None
            raise AssertionError("unreachable: handle_exception always raises") from None  # pragma: no cover


def too_deep() -> TemplateProblem:
    """The problem of a template nested past :data:`~.limits.MAX_NESTING`."""
    return TemplateProblem(f"the template nests more than {MAX_NESTING} levels deep (parentheses, filters, operators)")


def problem_of(exc: Exception) -> TemplateProblem:
    """The user's words for an error raised while rendering: always one line, never a traceback.

    Whatever a template does wrong is the template's problem (a filter given the
    wrong type raises anything from TypeError to AttributeError); the message
    names the exception and quotes at most :data:`~.limits.MAX_QUOTE` characters of it.
    """
    line = _line(exc)
    if isinstance(exc, UndefinedError):
        return TemplateProblem(f"undefined variable: {bound(exc.message or '', MAX_QUOTE)}", line, undefined=True)
    if isinstance(exc, SecurityError):
        return TemplateProblem(f"template refused by the sandbox: {bound(str(exc), MAX_QUOTE)}", line)
    if isinstance(exc, TemplateError):
        return TemplateProblem(f"template error: {bound(str(exc), MAX_QUOTE)}", line)
    if isinstance(exc, RecursionError):
        return TemplateProblem("template error: the template nests too deeply", line)
    if isinstance(exc, MemoryError):
        return TemplateProblem("template error: the text it builds does not fit in memory", line)
    return TemplateProblem(f"template error: {type(exc).__name__}: {bound(str(exc), MAX_QUOTE)}", line)


def _line(exc: BaseException) -> int | None:
    # Jinja rewrites tracebacks so frames of the template carry its line numbers.
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
