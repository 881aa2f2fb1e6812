"""Rate windows: how the simulated service counts calls per API key and scope.

The contract: "a fixed window per user (10 s by default), submits in their own scope;
no numbers published, Retry-After not promised". A fixed window can be read two ways,
and a client must cope with both, so both are here, beside the sliding window earlier
versions of this simulator had (a mode in :data:`LIMITS`, chosen by
``SimulatorConfig.rate_limit_mode``):

``fixed``    windows on the clock (``[k x W, (k + 1) x W)``), at most N calls in each;
             past N, 429 until the window ends. The common server-side counter
             (a key per user and window number).
``lockout``  a window starts at the first call after the last one ended; past N calls
             within it, the limit trips and every call gets 429 for one full window
             from that moment, however few calls come meanwhile.
``sliding``  at most N calls in any W seconds (a log of call times).

Each :meth:`RateWindow.admit` answers None (admitted, counted) or the seconds until a
call could be admitted, which the service sends as ``Retry-After`` only when told to.
Refused calls are never counted. Times are the simulator's clock, in real seconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

__all__ = ["LIMITS", "FixedWindow", "LockoutWindow", "RateWindow", "SlidingWindow", "make_window"]


class RateWindow(Protocol):
    """One key's limit in one scope (submit or status)."""

    limit: int
    window: float

    def admit(self, now: float) -> float | None:
        """None when the call is admitted (and counted); else seconds until one could be."""
        ...


class FixedWindow:
    """At most ``limit`` calls in each window of the clock; 429 until the window ends."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._index: int | None = None
        self._count = 0

    def admit(self, now: float) -> float | None:
        index = int(now // self.window)
        if index != self._index:
            self._index, self._count = index, 0
        if self._count >= self.limit:
            return (index + 1) * self.window - now
        self._count += 1
        return None


class LockoutWindow:
    """A window from the first call; past ``limit`` calls in it, a full window of 429s."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._started: float | None = None
        self._count = 0
        self._locked_until = 0.0

    def admit(self, now: float) -> float | None:
        if now < self._locked_until:
            return self._locked_until - now
        if self._started is None or now >= self._started + self.window:
            self._started, self._count = now, 0
        if self._count >= self.limit:
            # The limit trips: a full window of 429s from now, then a fresh window.
            self._locked_until = now + self.window
            self._started = None
            return self.window
        self._count += 1
        return None


class SlidingWindow:
    """At most ``limit`` calls in any ``window`` seconds (a sliding log)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._times: deque[float] = deque()

    def admit(self, now: float) -> float | None:
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return self._times[0] + self.window - now
        self._times.append(now)
        return None


# rate_limit_mode -> the window it counts with (SimulatorConfig checks the name against config.LIMIT_MODES).
LIMITS: dict[str, Callable[[int, float], RateWindow]] = {
    "fixed": FixedWindow,
    "lockout": LockoutWindow,
    "sliding": SlidingWindow,
}


def make_window(mode: str, limit: int, window: float) -> RateWindow:
    """A fresh window of ``mode`` allowing ``limit`` calls per ``window`` real seconds."""
    return LIMITS[mode](limit, window)
