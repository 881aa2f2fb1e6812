"""Time: one render's deadline and writes, and the seconds one expansion's templates share.

A :class:`TemplateBudget` belongs to one expansion (``expand()`` opens it with
``with``): every compile, and every render beyond a millisecond, of that expansion
comes out of its :data:`MAX_TEMPLATE_SECONDS`, and a template that ran out of its
own :data:`MAX_RENDER_SECONDS` fails at once for every later job of it (the
breaker). Nothing is shared between expansions, and nothing refills: an expansion
that spent its seconds is over, the next one starts full.

Outside any budget (a template compiled on its own, as in tests), each render
still has its own deadline, and nothing else is counted. Plain Python: a render's
deadline, which Jinja's code checks, is :mod:`.deadline`.
"""

from __future__ import annotations

import math
import time
from contextvars import ContextVar, Token
from types import TracebackType

from .limits import TemplateProblem

__all__ = ["FREE_RENDER_SECONDS", "MAX_RENDER_SECONDS", "MAX_TEMPLATE_SECONDS", "TemplateBudget", "current_budget"]

# A real template renders in microseconds; two seconds is a hang (or a hostile
# template), with room for a garbage-collector pause on a loaded machine.
MAX_RENDER_SECONDS = 2.0
# All compiling, and all rendering beyond a millisecond per job, of one expansion
# share this many seconds: any manifest's templates cost at most about that in all.
MAX_TEMPLATE_SECONDS = 5.0
FREE_RENDER_SECONDS = 0.001


class TemplateBudget:
    """The seconds of template work one expansion may still spend, and its tripped templates.

    Use it as a context manager around the expansion; approximate under threads
    (unlocked float updates), which is all a bound needs.
    """

    def __init__(self, seconds: float = MAX_TEMPLATE_SECONDS, *, render_seconds: float = MAX_RENDER_SECONDS) -> None:
        self.seconds, self.render_seconds, self.left = seconds, render_seconds, seconds
        # Templates that ran out of time, with their problem (the breaker); keys are kept
        # alive by the dict, so an id is never reused while the budget lives.
        self.tripped: dict[object, TemplateProblem] = {}
        self._tokens: list[Token[TemplateBudget | None]] = []

    def __enter__(self) -> TemplateBudget:
        self._tokens.append(_CURRENT.set(self))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        _CURRENT.reset(self._tokens.pop())

    @property
    def slow_job(self) -> str:
        """The problem of one render past its deadline."""
        return f"rendering took longer than {self.render_seconds:g} s, the most one job's template may take"

    @property
    def slow_all(self) -> str:
        """The problem once the expansion's seconds are spent."""
        return (f"this run's templates have taken more than {self.seconds:g} s to compile and render "
                "in all; make the slow template simpler")

    def check(self) -> tuple[float, float]:
        """``(now, seconds left)``; raise the expansion's problem when they are spent."""
        if self.left <= 0:
            raise TemplateProblem(f"template refused by the sandbox: {self.slow_all}")
        return time.monotonic(), self.left

    def spend(self, seconds: float) -> None:
        """Take ``seconds`` of work out of what is left."""
        if seconds > 0:
            self.left -= seconds

    def trip(self, template: object, problem: TemplateProblem) -> None:
        """``template`` ran out of time: every later render of it fails at once with ``problem``."""
        self.tripped[template] = problem


class _NoBudget(TemplateBudget):
    """Outside any expansion: a render's own deadline, nothing shared, no breaker kept."""

    def __init__(self) -> None:
        super().__init__(math.inf)

    def spend(self, seconds: float) -> None:
        return None

    def trip(self, template: object, problem: TemplateProblem) -> None:
        return None


_CURRENT: ContextVar[TemplateBudget | None] = ContextVar("template_budget", default=None)
_NONE = _NoBudget()


def current_budget() -> TemplateBudget:
    """The budget of the expansion running here (a render's own deadline only, outside one)."""
    return _CURRENT.get() or _NONE
