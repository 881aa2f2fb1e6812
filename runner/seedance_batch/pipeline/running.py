"""Rendering a manifest: plan, lock, recover, confirm, the service (or the simulator), the run, its signals, the reports."""

from __future__ import annotations

import signal
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..environment import credentials
from ..errors import Interrupted, LedgerError, LedgerFailed, Location, SeedanceError, UsageError
from ..ledger import JobRecord, Ledger, ledger_location, open_ledger
from ..manifest import Manifest
from ..plan import Plan, check_budget

if TYPE_CHECKING:  # the run's stack (httpx, anyio, starlette) is imported only by run_manifest
    from ..report import ReportPaths
    from ..run.progress import Progress
    from ..run.settings import RunResult, RunSettings
    from ..run.stops import Stops
    from ..webhooks import EventRelay
from .planning import load_plan

__all__ = ["RunOptions", "RunOutcome", "run_manifest"]

SIM_KEY = "sk-sim-local"
# --simulate runs the campaign 50x faster: render times, rate limits, timeouts and
# polling are all scaled together, so the run behaves as it would against APIDot.
SIM_TIME_SCALE = 0.02
# Ask before spending more than this on a terminal when the manifest sets no threshold.
DEFAULT_CONFIRM_USD = Decimal(10)
DEFAULT_LISTEN = "127.0.0.1:8787"


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What the command line asked for (None: the manifest's value, then the default)."""

    manifest: Path
    state: str | None = None
    prices: str | None = None
    simulate: bool = False
    yes: bool = False
    retry_failed: bool = False
    resubmit_unknown: bool = False
    max_usd: Decimal | None = None
    report_dir: str | None = None
    time_scale: float | None = None
    listen: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    verify: Sequence[str] = ("secret-path",)  # --verify: who may post callbacks (verifiers.VERIFIERS)
    only: Sequence[str] = ()  # --only patterns: render just the jobs they select
    check_media: bool = True  # False: --no-check-media (the source media are not checked first)
    profile: str | None = None  # --profile: the manifest's profile to render (None: its profile:)
    approved: bool = False  # --approved: only the takes approved in the review (see promotion)


@dataclass
class RunOutcome:
    """What a run did, for the CLI to print."""

    plan: Plan
    result: RunResult
    recovered: list[JobRecord]
    reports: ReportPaths | None = None


def run_manifest(options: RunOptions, *, confirm: Callable[[Plan, Decimal], bool] | None,
                 progress: Progress) -> RunOutcome:
    """Plan, confirm, render, download and report one manifest."""
    api = None if options.simulate else credentials()  # a missing key fails before anything else
    _listen_address(options.listen)  # so does a bad --listen
    with open_ledger(ledger_location(options.state)) as ledger:
        ledger.acquire_run_lock()
        recovered = ledger.recover()
        manifest, plan, settings = _prepare(options, ledger)
        _check_media(plan, ledger, options, progress)
        _confirm(plan, settings, options, confirm)
        started = datetime.now(timezone.utc)
        try:
            result = _render(plan, settings, api, options, ledger, progress)
            # Every row of the campaign, not just this plan's: spending on jobs no longer in the
            # manifest counts against the budget, in the report as in the plan.
            records = ledger.records(plan.campaign)
        except LedgerError as exc:
            raise LedgerFailed.mid_run(exc) from None
        key = api[1] if api is not None else SIM_KEY
        reports = _write_reports(plan, records, manifest, options, settings, started, key)
    return RunOutcome(plan, result, recovered, reports)


def _prepare(options: RunOptions, ledger: Ledger) -> tuple[Manifest, Plan, RunSettings]:
    """The plan and the run's settings, refused before anything is paid for when they cannot work."""
    from ..run.settings import RunSettings

    manifest, plan = load_plan(options.manifest, ledger, prices=options.prices, max_usd=options.max_usd,
                               retry_failed=options.retry_failed, resubmit_unknown=options.resubmit_unknown,
                               only=options.only, profile=options.profile, approved=options.approved)
    check_budget(plan)
    settings = RunSettings.build(manifest.run, options.overrides, output_dir=Path(manifest.output_dir),
                                 time_scale=_time_scale(options))
    if plan.to_submit or any(p.record is not None and p.record.state.in_flight for p in plan.jobs):
        _check_writable(settings.output_dir, "videos", location=manifest.locate(("output", "dir")),
                        hint="make the folder writable or point output.dir elsewhere")
        _check_targets(plan, settings.output_dir)
    _check_writable(_report_dir(plan, options), "reports", location=None,
                    hint="make it writable or pass another --report-dir")
    return manifest, plan, settings


def _check_media(plan: Plan, ledger: Ledger, options: RunOptions, progress: Progress) -> None:
    """The source media of the jobs to submit, checked before anything is paid for (see media.preflight)."""
    from ..media import check_before_run

    check_before_run(plan, ledger, enabled=options.check_media, simulate=options.simulate, note=progress.note)


def _confirm(plan: Plan, settings: RunSettings, options: RunOptions,
             confirm: Callable[[Plan, Decimal], bool] | None) -> None:
    """Ask before spending above ``run.confirm_above_usd`` (default $10), unless told not to."""
    threshold = settings.confirm_above_usd if settings.confirm_above_usd is not None else DEFAULT_CONFIRM_USD
    if options.simulate or options.yes or plan.usd <= threshold or confirm is None:
        return
    if not confirm(plan, threshold):
        raise Interrupted("not confirmed; nothing was submitted")


def _render(plan: Plan, settings: RunSettings, api: tuple[str, str] | None, options: RunOptions,
            ledger: Ledger, progress: Progress) -> RunResult:
    """The run itself, against APIDot or the simulator, with the receiver when callbacks are asked for."""
    import anyio

    from ..webhooks import EventRelay

    relay = EventRelay()
    with _service(api, options) as (base_url, key), \
            _receiver(ledger, settings, options, relay, plan.campaign) as settings:
        return anyio.run(_execute, plan, settings, base_url, key, ledger, progress, relay)


async def _execute(plan: Plan, settings: RunSettings, base_url: str, key: str, ledger: Ledger,
                   progress: Progress, relay: EventRelay) -> RunResult:
    from ..run.client import ApiClient
    from ..run.engine import execute
    from ..run.stops import Stops

    stops = Stops(progress, give_up_after=settings.give_up_after)
    async with ApiClient(base_url, key) as client:
        return await _with_signals(stops, lambda: execute(plan, settings, client=client, ledger=ledger,
                                                          progress=progress, events=relay, stops=stops))


async def _with_signals(stops: Stops, work: Callable[[], Awaitable[RunResult]]) -> RunResult:
    """``work()``, with Ctrl-C and SIGTERM turned into stops while it lasts (signals reach the main thread only)."""
    import anyio

    if threading.current_thread() is not threading.main_thread():
        return await work()
    done: list[RunResult] = []
    failed: list[SeedanceError] = []
    async with anyio.create_task_group() as watcher:
        watcher.start_soon(_watch_signals, stops)
        try:
            done.append(await work())
        except SeedanceError as exc:
            failed.append(exc)  # raised as itself below: out of the task group it would come in a group
        finally:
            watcher.cancel_scope.cancel()
    if failed:
        raise failed[0]
    return done[0]


async def _watch_signals(stops: Stops) -> None:
    """Ctrl-C once: no new submits, what is in flight is tracked; again, or SIGTERM: leave now."""
    import anyio

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if signum == signal.SIGINT and not stops.interrupted:
                stops.interrupt()
                continue
            stops.leave()
            return


def _check_writable(folder: Path, what: str, *, location: Location | None, hint: str) -> None:
    """Refuse a run whose videos or reports could not be saved, before anything is paid for."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write {what} under {folder}: {exc.strerror or type(exc).__name__}",
                         location=location, hint=hint) from None


def _check_targets(plan: Plan, output_dir: Path) -> None:
    """Refuse, before anything is paid, a job whose video would land outside ``output_dir``.

    Only jobs this run would submit or track: a symbolic link at (or on the way to) a
    file the run will write is found now, not after the render is paid for.
    """
    from ..run.downloads import TargetCheck

    safe_target = TargetCheck(output_dir)
    for planned in plan.jobs:
        rec = planned.record
        if not (planned.submit or (rec is not None and rec.state.in_flight)):
            continue
        job = planned.priced.job
        try:
            safe_target(job.output_path)
        except UsageError as exc:
            where = job.location
            raise UsageError(exc.message, location=Location(where.file, where.line, where.col, where.path, job.label),
                             hint="remove the link or change output.filename; nothing was submitted") from None


def _report_dir(plan: Plan, options: RunOptions) -> Path:
    from ..report import default_report_dir

    return Path(options.report_dir) if options.report_dir else default_report_dir(plan.campaign)


def _time_scale(options: RunOptions) -> float:
    if options.time_scale is not None:
        if not options.time_scale > 0:
            raise UsageError(f"--time-scale must be above 0, got {options.time_scale!r}")
        return options.time_scale
    return SIM_TIME_SCALE if options.simulate else 1.0


@contextmanager
def _receiver(ledger: Ledger, settings: RunSettings, options: RunOptions,
              relay: EventRelay, campaign: str) -> Iterator[RunSettings]:
    """With ``run.callback_url``: the run's secret callback URL, and its receiver serving for the run's length
    (on ``--listen``, default 127.0.0.1:8787; a free loopback port under ``--simulate``; none with
    ``--listen off``, where a ``seedance-batch receive`` elsewhere writes the events): see :mod:`.receiving`."""
    from ..receiving import run_callbacks

    with run_callbacks(ledger, settings, campaign=campaign, listen=options.listen, simulate=options.simulate,
                       verify=options.verify, relay=relay) as settings:
        yield settings


def _listen_address(listen: str | None) -> tuple[str, int] | None:
    from ..receiving import listen_address

    return listen_address(listen)


@contextmanager
def _service(api: tuple[str, str] | None, options: RunOptions) -> Iterator[tuple[str, str]]:
    """APIDot (or $APIDOT_BASE_URL), or the simulator started here on a free port."""
    if api is not None:
        yield api
        return
    from ..simulator import Faults, SimulatorConfig, run_simulator

    # Every task ends here: `run --simulate` is the README's first command, and one of the
    # real service's stalled tasks (the standalone simulator keeps them) would make a first
    # try wait for run.timeout and exit 1.
    config = SimulatorConfig(time_scale=_time_scale(options), prices=options.prices, faults=Faults(task_stuck=0))
    with run_simulator(config) as sim:
        yield sim.base_url, SIM_KEY


def _write_reports(plan: Plan, records: Sequence[JobRecord], manifest: Manifest, options: RunOptions,
                   settings: RunSettings, started: datetime, key: str) -> ReportPaths:
    out_dir = _report_dir(plan, options)
    from ..report import write_reports

    return write_reports(plan, records, out_dir=out_dir, output_dir=settings.output_dir,
                         manifest_path=manifest.path, manifest_sha256=manifest.sha256, started_at=started,
                         finished_at=datetime.now(timezone.utc), secrets=(key,))
