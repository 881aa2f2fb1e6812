"""What a run is told (:class:`RunSettings`) and how it ended (:class:`RunResult`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import SeedanceError, UsageError, exit_code, run_ending
from ..ledger import PLANNED, JobRecord, JobState

__all__ = ["RunResult", "RunSettings"]


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How a run behaves: the manifest's ``run:`` section, then command-line overrides.

    Durations are service seconds; ``time_scale`` (``--simulate``) compresses all
    of them together with the simulator's render times, rate limits included, so
    a simulated run behaves like a real one, only faster.

    The fields after ``retry_wait_max`` are the run's policy: no manifest key or flag
    sets them (the schema allows none), but they are here, named, not buried in code.
    """

    submits_per_minute: float = 30.0
    status_per_minute: float = 120.0
    max_in_flight: int = 8
    max_attempts: int = 5
    timeout: float = 1800.0
    poll_interval: float = 1.0
    callback_url: str | None = field(default=None, repr=False)  # with the run's secret in it: never shown
    confirm_above_usd: Decimal | None = None
    output_dir: Path = Path("renders")
    time_scale: float = 1.0
    retry_wait_initial: float = 1.0
    retry_wait_max: float = 60.0
    download_concurrency: int = 4  # videos downloading at once (each a few MB: the disk is the limit)
    status_concurrency: int = 8    # status calls in the air at once (the pacer sets their rate)
    status_attempts: int = 3       # tries of one status check before waiting for the next poll
    url_refreshes: int = 3         # fresh file URLs asked for one download before a later run tries
    # Jobs in a row whose every submit attempt failed (429s, 5xx, unreachable) before the run
    # stops submitting: the service is down or the network is, and grinding on costs time only.
    give_up_after: int = 3
    poll_policy: str = "progress-clock"  # a name in run.polling.POLL_POLICIES: without callbacks...
    webhook_poll_policy: str = "safety-net"  # ...and with them (rare polls behind the webhooks)
    # The server's rate window, as the pacers learn its rate from 429s (the contract: a fixed
    # window per user, 10 s by default; service seconds).
    rate_window: float = 10.0
    # A call answered only 429s this long (service seconds) counts its 429s as attempts again:
    # a throttled-for-good account still ends the run (see run/retry.py).
    rate_limit_patience: float = 600.0
    # On a ledger several runners share (run/takeover.py): a runner's lease (service seconds), renewed
    # every quarter of it while the runner lives. A runner that dies leaves its in-flight tasks to
    # the others this long after its last renewal.
    lease: float = 60.0

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
    """How a run ended; :meth:`ending` is the error it is reported with (see :func:`~seedance_batch.errors.run_ending`)."""

    records: list[JobRecord]
    planned: int = 0  # jobs of the plan; those with no ledger row were never submitted
    interrupted: bool = False
    stopped_by_budget: bool = False
    error: SeedanceError | None = None  # what stopped the submits and decides the exit code (an account error)
    submitted: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Jobs of the plan per final ledger state (``planned``: no ledger row)."""
        out: dict[str, int] = {}
        for rec in self.records:
            out[rec.state.value] = out.get(rec.state.value, 0) + 1
        if self.planned > len(self.records):
            out[PLANNED] = self.planned - len(self.records)
        return out

    def not_done(self) -> int:
        """Jobs of the plan that are not done (no ledger row counts as not done)."""
        done = sum(1 for rec in self.records if rec.state is JobState.DONE)
        return max(self.planned, len(self.records)) - done

    def pacing(self) -> str | None:
        """How the service's rate limit showed in this run, for its summary; None when it never answered 429.

        ``429 answers: 12 (submit 9, status 3); submits paced to 29.1 a minute``
        """
        limited = self.stats.get("rate_limited") or {}
        total = sum(limited.values())
        if not total:
            return None
        parts = ", ".join(f"{scope} {count}" for scope, count in limited.items() if count)
        text = f"429 answers: {total} ({parts})"
        learned = self.stats.get("submits_per_minute_learned")
        return text + (f"; submits paced to {learned:g} a minute" if learned else "")

    def ending(self) -> SeedanceError | None:
        """The error this run is reported with, its exit code with it; None when everything is done."""
        return run_ending(interrupted=self.interrupted, stopped_by=self.error,
                          stopped_by_budget=self.stopped_by_budget, not_done=self.not_done())

    @property
    def exit_code(self) -> int:
        """The run's exit code, as :mod:`seedance_batch.errors` decides it."""
        return exit_code(self.ending())
