"""Rate limits for a run: a paced schedule that learns the server's rate from its 429s.

One :class:`Pacer` per endpoint (submit, status), shared by every caller. Admissions are
scheduled ``1.02 / rate`` apart (a burst of one) and never ahead of the schedule, so a
client limit at or under the server's does not trip it, whether the server counts with a
token bucket, a sliding window or fixed windows.

A 429 is a pacing signal, not a failure: the whole run slows down, not just the request
that got it. APIDot counts calls in a fixed window per user (10 s by default, the
contract), publishes no numbers and does not promise Retry-After, so the pacer learns:

* **the rate.** The first 429 of an episode is its *trip*. The calls the server accepted
  over the window before it (``window``: the server's window as the run knows it,
  ``RunSettings.rate_window``) are what it allows per window, and the pacer goes on at
  that rate, 3% under it. Calls are counted by when they were *sent* (the caller says:
  ``succeeded(sent_at)``), not when their answers came back, and the count is taken when
  the episode ends (the first call sent after the trip goes through), when every answer
  of the window is in; until then the pacer goes on at what it knew at the trip. Whether
  the server refuses until its window ends or for a full window after the limit trips,
  pacing under the limit means it trips rarely, where bouncing off it at twice the rate
  loses a window in three to lockouts. A trip at a learned rate measures again (and so
  lowers it a little). Every 30 windows without a 429 the learned rate is raised a
  tenth (towards ``per_minute``), so a server that allows more again is found. Without a
  known window it halves the rate instead (AIMD, as before).
* **the pause.** Nobody is admitted before Retry-After when the server sends one; when it
  does not, one probe is let through every tenth of a window until the server accepts
  again. The 429s of calls already in the air, and of probes, belong to the episode.

Successes then recover a step at a time towards the learned rate (additive increase).
The waiters are served first come, first served. :attr:`Pacer.limited` counts the 429s
seen (the run's summary shows them).
"""

from __future__ import annotations

import time
from bisect import bisect_right, insort
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
# The learned rate: 3% under what the server accepted in its last window...
MARGIN = 0.97
# Without Retry-After, one probe every tenth of the server's window until one is accepted.
PROBES_PER_WINDOW = 10
# A learned rate is raised a tenth after this many windows without a 429.
RAISE_AFTER_WINDOWS = 30
RAISE = 1.1


class Pacer:
    """Admit at most ``per_minute`` calls a minute, evenly spaced; slow to the server's rate on 429.

    ``window``: the server's rate window in real seconds, when known (the rate is then
    learned from it); None: halve on each 429 episode instead.
    """

    def __init__(self, per_minute: float, *, window: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError(f"per_minute must be above 0, got {per_minute!r}")
        if window is not None and not window > 0:
            raise ValueError(f"window must be above 0, got {window!r}")
        self.target = per_minute / 60.0
        self.rate = self.target
        self.window = window
        self.ceiling: float | None = None  # the server's rate as learned (None: nothing learned)
        self._clock = clock
        self._next = 0.0
        self._trip: float | None = None  # when the call was sent whose 429 began the episode under way
        self._last_trip = float("-inf")  # the last episode's trip (its late 429s are not a new one)
        self._before_trip = self.rate    # the rate the episode under way tripped at
        self._calm_after = 0.0           # without a window: a 429 after this begins a new episode
        self._raise_after = 0.0  # when a learned rate is next raised
        self._accepted: list[float] = []  # when the calls that went through were sent, sorted, over a window
        self._lock = anyio.Lock()
        self.admitted = 0
        self.decreases = 0
        self.limited = 0

    async def acquire(self) -> None:
        """Wait for this caller's turn."""
        async with self._lock:
            # A time is awaited, not an event: re-checked after each sleep, since a 429
            # meanwhile may have pushed _next later.
            while (wait := self._next - self._clock()) > 0:  # noqa: ASYNC110
                await anyio.sleep(wait)
            self.admit(self._clock())

    @property
    def next_admission(self) -> float:
        """The clock time from which the next caller is admitted."""
        return self._next

    def admit(self, now: float) -> None:
        """Admit one call at ``now`` (at or after :attr:`next_admission`) and schedule the next.

        Admissions follow the schedule t0 + k x interval and never run ahead of it. A
        slightly late wake-up keeps the schedule (the next gap is a little shorter), so a
        busy event loop does not lose rate; a wake-up later than a quarter interval starts
        a new schedule instead, so no burst can squeeze more calls into a server's
        sliding window than the 2% margin absorbs.
        """
        interval = SAFETY / self.rate
        if now - self._next > LATE_RESET * interval:
            self._next = now
        self._next += interval
        self.admitted += 1

    def slow_down(self, retry_after: float | None, sent_at: float | None = None) -> None:
        """A 429 for a call sent at ``sent_at`` (clock time; None: now): pause, and learn the rate.

        The pause: Retry-After, else until a probe gets through. The first 429 of an episode
        is its *trip*; the episode lasts until a call sent after the trip goes through, and
        only then is the rate learned (:meth:`succeeded`), from every answer by then in.
        """
        now = self._clock()
        sent = now if sent_at is None else sent_at
        self.limited += 1
        pause = retry_after if retry_after is not None else self._probe_interval()
        self._next = max(self._next, now + pause)
        if self._trip is not None and self.window is None and now >= self._calm_after:
            self._last_trip, self._trip = self._trip, None  # no window to learn over: an episode ends with its pause
        if self._trip is not None or sent <= self._last_trip:
            self._calm_after = max(self._calm_after, self._next + pause)
            return  # the episode under way (a probe, or a call already in the air), or an older one's
        self._calm_after = self._next + pause
        self._trip, self._before_trip = sent, self.rate
        self.decreases += 1
        # Until the episode ends, go on at what is known now (the late answers may add to it).
        self.rate = self._learned(sent, provisional=True)

    def succeeded(self, sent_at: float | None = None) -> None:
        """A call sent at ``sent_at`` (None: now) went through: count it, end an episode, recover a step."""
        now = self._clock()
        sent = now if sent_at is None else sent_at
        if self.window is not None:
            insort(self._accepted, sent)
            self._forget(now)
        if self._trip is not None and (sent > self._trip or self.window is None):
            # The server accepts again: every call sent before the trip has been answered by
            # now (or nearly), so what it accepted over its window is known.
            self.rate = self._learned(self._trip, provisional=False)
            self._last_trip, self._trip = self._trip, None
            if self.window is not None:
                self._raise_after = now + RAISE_AFTER_WINDOWS * self.window
        ceiling = self.target if self.ceiling is None else self.ceiling
        if self.ceiling is not None and now >= self._raise_after and self.window is not None and self._trip is None:
            # The server may allow more now (another runner stopped): try a tenth more.
            self.ceiling = ceiling = min(self.target, self.ceiling * RAISE)
            self._raise_after = now + RAISE_AFTER_WINDOWS * self.window
        if self.rate < ceiling and self._trip is None:
            self.rate = min(ceiling, self.rate + ceiling / RECOVER_STEPS)

    def _learned(self, trip: float, *, provisional: bool) -> float:
        """The rate to go on at after a trip at ``trip``: what the server accepted over the window before it."""
        floor = self.target * FLOOR_FRACTION
        if self.window is None:
            return max(floor, self.rate * DECREASE) if provisional else self.rate
        accepted = bisect_right(self._accepted, trip) - bisect_right(self._accepted, trip - self.window)
        if accepted == 0:  # refused with nothing through lately (another client's calls?): halve
            return max(floor, self.rate * DECREASE) if provisional else self.rate
        self.ceiling = max(floor, min(self.rate if provisional else self._before_trip, MARGIN * accepted / self.window))
        return self.ceiling

    def _probe_interval(self) -> float:
        """How long to wait without Retry-After: a tenth of the server's window (else one interval)."""
        if self.window is not None:
            return self.window / PROBES_PER_WINDOW
        return 1.0 / self.rate

    def _forget(self, now: float) -> None:
        """Drop what was sent over two windows before now (or before an episode's trip, which looks back one)."""
        stale = bisect_right(self._accepted, (now if self._trip is None else self._trip) - 2 * (self.window or 0.0))
        if stale:
            del self._accepted[:stale]
