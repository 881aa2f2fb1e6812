"""The retry policy every retry loop of the run shares: which errors, how long to wait.

Retries are stamina's (``on=`` is always given: nothing is retried by accident). How
retries are *logged* is the application's business, set at the CLI edge: nothing here
touches stamina's process-wide configuration. Each retry is recorded where the user
looks instead: the ledger (``released``, ``gave_up``...) and the progress lines.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

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
    """``await call()`` until it succeeds, ``on`` refuses the error (re-raised), or ``attempts`` run out."""
    async for attempt in stamina.retry_context(on=on, attempts=attempts, timeout=None):
        with attempt:
            return await call()
    raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover


def capped(value: float | None, cap: float) -> float | None:
    """``value`` at most ``cap`` (None stays None)."""
    return None if value is None else min(value, cap)
