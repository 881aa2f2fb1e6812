"""The retry policy every retry loop of the run shares: which errors, how long to wait.

Retries are stamina's (``on=`` is always given: nothing is retried by accident). How
retries are *logged* is the application's business, set at the CLI edge: nothing here
touches stamina's process-wide configuration. Each retry is recorded where the user
looks instead: the ledger (``released``, ``gave_up``...) and the progress lines.

A 429 is a pacing signal, not a failure: it never uses up one of a call's
``attempts`` (those are for transient faults). A call that gets one is tried again
at once, and waits its turn in the endpoint's :class:`~.ratelimit.Pacer`, which the
429 has slowed (every caller here goes through one). Only a service that has answered
a call with nothing but 429s for ``RunSettings.rate_limit_patience`` makes its 429s
count as attempts again, so a run against an account that is throttled for good still
ends (the job stays ``pending``; the next run tries again).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio.lowlevel
import stamina

from ..errors import RateLimited
from .settings import RunSettings

__all__ = ["Backoff", "capped", "retrying", "without"]

T = TypeVar("T")


class Backoff:
    """stamina backoff hook: retry only the retryable types; full jitter; honour Retry-After."""

    def __init__(self, settings: RunSettings, retryable: tuple[type[Exception], ...]) -> None:
        self._settings = settings
        self._retryable = retryable
        self._tries = 0
        self._limited_since: float | None = None  # monotonic time of this call's first 429

    def free(self, exc: Exception) -> bool:
        """Whether ``exc`` is a 429 to try again without spending an attempt (see the module)."""
        if not (isinstance(exc, RateLimited) and isinstance(exc, self._retryable)):
            return False
        now = time.monotonic()
        if self._limited_since is None:
            self._limited_since = now
        return now - self._limited_since < self._settings.real(self._settings.rate_limit_patience)

    def __call__(self, exc: Exception) -> bool | float:
        if not isinstance(exc, self._retryable):
            return False
        self._tries += 1
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            # Retry-After is real seconds from the server; honoured up to retry_wait_max.
            return min(exc.retry_after, self._settings.retry_wait_max)
        cap = min(self._settings.retry_wait_max, self._settings.retry_wait_initial * 2 ** (self._tries - 1))
        return self._settings.real(random.uniform(0, cap))


def without(hook: Callable[[Exception], bool | float],
            *never: type[Exception]) -> Callable[[Exception], bool | float]:
    """``hook``, but never retrying the ``never`` types (an expired URL is refreshed instead...)."""
    return lambda exc: False if isinstance(exc, never) else hook(exc)


async def retrying(call: Callable[[], Awaitable[T]], *, on: Callable[[Exception], bool | float],
                   attempts: int) -> T:
    """``await call()`` until it succeeds, ``on`` refuses the error (re-raised), or ``attempts`` run out.

    With a :class:`Backoff` as ``on``, a 429 it calls :meth:`~Backoff.free` is tried again
    without counting as an attempt (the call's own pacer does the waiting).
    """
    free = on.free if isinstance(on, Backoff) else None
    async for attempt in stamina.retry_context(on=on, attempts=attempts, timeout=None):
        with attempt:
            return await _through_429s(call, free)
    raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover


async def _through_429s(call: Callable[[], Awaitable[T]], free: Callable[[Exception], bool] | None) -> T:
    """``await call()``, again after each 429 that ``free`` lets through without an attempt."""
    while True:
        try:
            return await call()
        except RateLimited as exc:
            if free is None or not free(exc):
                raise
        await anyio.lowlevel.checkpoint()  # a cancellation (Ctrl-C) gets in between tries


def capped(value: float | None, cap: float) -> float | None:
    """``value`` at most ``cap`` (None stays None)."""
    return None if value is None else min(value, cap)
