"""One render's deadline and writes, checked from inside Jinja's code (the sandbox, filters, guards)."""

from __future__ import annotations

import threading
import time

from jinja2.exceptions import SecurityError

from .budget import TemplateBudget
from .limits import MAX_WRITTEN

__all__ = ["LOCAL", "Render", "TooSlow", "tick"]


class TooSlow(SecurityError):
    """A render passed its deadline: its own (``job``), or the expansion's."""

    def __init__(self, message: str, job: bool) -> None:
        super().__init__(message)
        self.job = job


class Render:
    """What one render may still spend: its deadline and the characters it may still write."""

    __slots__ = ("budget", "deadline", "job", "written")

    def __init__(self, budget: TemplateBudget, start: float, left: float) -> None:
        # The expansion's time left caps the job's own: no render overdraws it by seconds.
        limit = budget.render_seconds
        self.budget, self.deadline, self.job, self.written = budget, start + min(limit, left), left >= limit, 0

    def tick(self) -> None:
        """Raise :class:`TooSlow` once past the deadline."""
        if time.monotonic() > self.deadline:
            raise TooSlow(self.budget.slow_job if self.job else self.budget.slow_all, self.job)

    def write(self, size: int) -> None:
        """Count ``size`` characters written; refuse past :data:`~.limits.MAX_WRITTEN`."""
        self.written += size
        if self.written > MAX_WRITTEN:
            raise SecurityError(f"the template writes more than {MAX_WRITTEN} characters in all (output and set blocks)")


class _Local(threading.local):
    render: Render | None = None  # the render running on this thread (None while compiling)


LOCAL = _Local()


def tick() -> None:
    """Check the deadline of the render running on this thread (none while compiling)."""
    render = LOCAL.render
    if render is not None:
        render.tick()
