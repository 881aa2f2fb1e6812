"""Rate limits for a run: a paced token bucket with AIMD, shared by every submitter.

One :class:`Pacer` per endpoint (submit, status). Admissions are scheduled
``1.02 / rate`` apart (a burst of one) and never ahead of the schedule, so a client
limit at or under the server's does not trip it, whether the server counts with a
token bucket or a sliding window. On a 429 the whole run
slows down, not just the request that got it: the rate is halved (once per
congestion episode, not once per concurrent 429) and nobody is admitted before
``Retry-After``; each success then adds back a twentieth of the target rate
(additive increase). The waiters are served first come, first served.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

__all__ = ["Pacer"]

# Space admissions 2% wider than the limit: a request sent a few milliseconds late
# must not bring two others closer together than the server's window allows.
SAFETY = 1.02
DECREASE = 0.5
RECOVER_STEPS = 20
FLOOR_FRACTION = 0.02
LATE_RESET = 0.25


class Pacer:
    """Admit at most ``per_minute`` calls a minute, evenly spaced; slow down on 429."""

    def __init__(self, per_minute: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError(f"per_minute must be above 0, got {per_minute!r}")
        self.target = per_minute / 60.0
        self.rate = self.target
        self._clock = clock
        self._next = 0.0
        self._calm_after = 0.0
        self._lock = anyio.Lock()
        self.admitted = 0
        self.decreases = 0

    async def acquire(self) -> None:
        """Wait for this caller's turn."""
        async with self._lock:
            # A time is awaited, not an event: re-checked after each sleep, since a 429
            # meanwhile may have pushed _next later.
            while (wait := self._next - self._clock()) > 0:  # noqa: ASYNC110
                await anyio.sleep(wait)
            # Admissions follow the schedule t0 + k x interval and never run ahead of it. A
            # slightly late wake-up keeps the schedule (the next gap is a little shorter),
            # so a busy event loop does not lose rate; a wake-up later than a quarter
            # interval starts a new schedule instead, so no burst can squeeze more calls
            # into a server's sliding window than the 2% margin absorbs.
            now = self._clock()
            interval = SAFETY / self.rate
            if now - self._next > LATE_RESET * interval:
                self._next = now
            self._next += interval
            self.admitted += 1

    def slow_down(self, retry_after: float | None) -> None:
        """A 429: halve the rate (once per episode) and admit nobody before ``retry_after``."""
        now = self._clock()
        pause = retry_after if retry_after is not None else 1.0 / self.rate
        self._next = max(self._next, now + pause)
        if now >= self._calm_after:
            self.rate = max(self.target * FLOOR_FRACTION, self.rate * DECREASE)
            self.decreases += 1
            # further 429s from requests already in the air belong to the same episode
            self._calm_after = now + pause + 1.0 / self.rate
        # fresh 429s after the episode halve again

    def succeeded(self) -> None:
        """A call went through: recover a step towards the target rate."""
        if self.rate < self.target:
            self.rate = min(self.target, self.rate + self.target / RECOVER_STEPS)
