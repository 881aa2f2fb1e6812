"""What a run is told (:class:`RunSettings`) and how it ended (:class:`RunResult`),
plus the retry policy every retry loop of the run shares (:class:`Backoff`)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import (
    EXIT_ACCOUNT,
    EXIT_BUDGET,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    AccountError,
    RateLimited,
    SeedanceError,
    UsageError,
)
from ..ledger import JobRecord, JobState

__all__ = ["Backoff", "RunResult", "RunSettings", "capped"]


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How a run behaves: the manifest's ``run:`` section, then command-line overrides.

    Durations are service seconds; ``time_scale`` (``--simulate``) compresses all
    of them together with the simulator's render times, rate limits included, so
    a simulated run behaves like a real one, only faster.
    """

    submits_per_minute: float = 30.0
    status_per_minute: float = 120.0
    max_in_flight: int = 8
    max_attempts: int = 5
    timeout: float = 1800.0
    poll_interval: float = 1.0
    callback_url: str | None = None
    confirm_above_usd: Decimal | None = None
    output_dir: Path = Path("renders")
    time_scale: float = 1.0
    retry_wait_initial: float = 1.0
    retry_wait_max: float = 60.0

    @classmethod
    def build(cls, run: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, **fixed: Any) -> RunSettings:
        """Settings from a manifest's ``run:`` mapping, with non-None ``overrides`` winning."""
        values: dict[str, Any] = {}
        names = set(cls.__dataclass_fields__)
        for source in (run, overrides or {}):
            values.update({k: v for k, v in source.items() if k in names and v is not None})
        values.update(fixed)
        if values.get("confirm_above_usd") is not None:
            values["confirm_above_usd"] = Decimal(str(values["confirm_above_usd"]))
        for name in ("submits_per_minute", "status_per_minute", "timeout", "poll_interval", "time_scale"):
            if name in values and not float(values[name]) > 0:
                raise UsageError(f"{name.replace('_', '-')} must be above 0, got {values[name]!r}")
        for name in ("max_in_flight", "max_attempts"):
            if name in values and int(values[name]) < 1:
                raise UsageError(f"{name.replace('_', '-')} must be 1 or more, got {values[name]!r}")
        return cls(**values)

    def real(self, service_seconds: float) -> float:
        """Real seconds for a span of service time."""
        return service_seconds * self.time_scale


@dataclass
class RunResult:
    """How a run ended. ``error`` (account, budget) is what the CLI raises after the report."""

    records: list[JobRecord]
    planned: int = 0  # jobs of the plan; those with no ledger row were never submitted
    interrupted: bool = False
    stopped_by_budget: bool = False
    error: SeedanceError | None = None
    submitted: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Jobs of the plan per final ledger state (``not submitted``: no ledger row)."""
        out: dict[str, int] = {}
        for rec in self.records:
            out[rec.state.value] = out.get(rec.state.value, 0) + 1
        if self.planned > len(self.records):
            out["not submitted"] = self.planned - len(self.records)
        return out

    @property
    def exit_code(self) -> int:
        """130 interrupted; 4 account; 3 budget; 1 anything not done; else 0."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if isinstance(self.error, AccountError):
            return EXIT_ACCOUNT
        if self.stopped_by_budget:
            return EXIT_BUDGET
        if len(self.records) < self.planned or any(rec.state is not JobState.DONE for rec in self.records):
            return EXIT_FAILED
        return EXIT_OK


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


def capped(value: float | None, cap: float) -> float | None:
    return None if value is None else min(value, cap)
