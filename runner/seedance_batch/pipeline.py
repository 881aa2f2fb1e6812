"""The one orchestrator: manifest -> expand -> price -> plan -> (simulator) -> run -> reports.

The stages are pure functions of plain data; this module composes them, in order,
with the I/O around them: reading the manifest and the price file, the ledger (read
only for :func:`view_campaign`; run lock and crash recovery for :func:`run_manifest`),
the API credentials (:mod:`.environment`; never the manifest), the in-process
simulator for ``--simulate``, the webhook receiver, the run's signals (Ctrl-C once:
no new submits; twice, or SIGTERM: leave now), and the reports. The CLI parses,
calls one of these, and prints.

A ledger that fails while the run renders (a full disk; next, a dropped database
connection) ends the run with :class:`~.errors.LedgerFailed` (exit 5): some jobs
may be submitted, so it is not the "nothing was submitted" of a ledger that cannot
be opened (exit 2).
"""

from __future__ import annotations

import gc
import signal
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .environment import credentials
from .errors import Interrupted, LedgerError, LedgerFailed, Location, SeedanceError, UsageError
from .expand import expand
from .ledger import JobRecord, Ledger, ledger_location, open_ledger
from .manifest import Manifest, load_manifest
from .models import load_catalog, price_jobs
from .plan import Plan, check_budget, make_plan

if TYPE_CHECKING:  # the run's stack (httpx, anyio, starlette) is imported only by run_manifest
    from .report import ReportPaths
    from .run.progress import Progress
    from .run.settings import RunResult, RunSettings
    from .run.stops import Stops
    from .webhooks import EventRelay

__all__ = ["LedgerView", "RunOptions", "RunOutcome", "load_plan", "run_manifest", "view_campaign"]

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
    _split_listen(options.listen)  # so does a bad --listen
    with open_ledger(ledger_location(options.state)) as ledger:
        ledger.acquire_run_lock()
        recovered = ledger.recover()
        manifest, plan, settings = _prepare(options, ledger)
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
    from .run.settings import RunSettings

    manifest, plan = load_plan(options.manifest, ledger, prices=options.prices, max_usd=options.max_usd,
                               retry_failed=options.retry_failed, resubmit_unknown=options.resubmit_unknown)
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

    from .webhooks import EventRelay

    relay = EventRelay()
    with _service(api, options) as (base_url, key), \
            _receiver(ledger, settings, options, relay, plan.campaign) as settings:
        return anyio.run(_execute, plan, settings, base_url, key, ledger, progress, relay)


async def _execute(plan: Plan, settings: RunSettings, base_url: str, key: str, ledger: Ledger,
                   progress: Progress, relay: EventRelay) -> RunResult:
    from .run.client import ApiClient
    from .run.engine import execute
    from .run.stops import Stops

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
    for planned in plan.jobs:
        rec = planned.record
        if not (planned.submit or (rec is not None and rec.state.in_flight)):
            continue
        job = planned.priced.job
        try:
            from .run.downloads import safe_target

            safe_target(output_dir, job.output_path)
        except UsageError as exc:
            where = job.location
            raise UsageError(exc.message, location=Location(where.file, where.line, where.col, where.path, job.label),
                             hint="remove the link or change output.filename; nothing was submitted") from None


def _report_dir(plan: Plan, options: RunOptions) -> Path:
    from .report import default_report_dir

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
    """With ``run.callback_url``, serve the webhook receiver for the run's length.

    Under ``--simulate`` it listens on a free loopback port and the simulator is told
    that address; otherwise on ``--listen`` (default 127.0.0.1:8787), which the public
    ``callback_url`` is expected to reach (a tunnel or a reverse proxy).
    """
    if not settings.callback_url:
        yield settings
        return
    host, port = ("127.0.0.1", 0) if options.simulate else _split_listen(options.listen)
    with ExitStack() as stack:
        try:
            from .webhooks import run_receiver

            url = stack.enter_context(run_receiver(ledger, host=host, port=port, on_event=relay,
                                                           campaign=campaign))
        except UsageError as exc:  # its words name the simulator's --host/--port
            why = exc.message.rsplit(": ", 1)[-1]
            raise UsageError(f"cannot listen on --listen {host}:{port}: {why}",
                             hint="pass --listen HOST:PORT with an IPv4 address of this machine and a free port "
                                  "(default 127.0.0.1:8787)") from None
        if options.simulate:
            settings = replace(settings, callback_url=f"{url}/apidot/callback")
        yield settings


def _split_listen(listen: str | None) -> tuple[str, int]:
    host, _, port = (listen or DEFAULT_LISTEN).rpartition(":")
    if not (port.isascii() and port.isdigit() and int(port) <= 65535) or not host:
        raise UsageError(f"--listen must be HOST:PORT (a port up to 65535), got {listen!r}")
    return host, int(port)


@contextmanager
def _service(api: tuple[str, str] | None, options: RunOptions) -> Iterator[tuple[str, str]]:
    """APIDot (or $APIDOT_BASE_URL), or the simulator started here on a free port."""
    if api is not None:
        yield api
        return
    from .simulator import SimulatorConfig, run_simulator

    with run_simulator(SimulatorConfig(time_scale=_time_scale(options), prices=options.prices)) as sim:
        yield sim.base_url, SIM_KEY


def _write_reports(plan: Plan, records: Sequence[JobRecord], manifest: Manifest, options: RunOptions,
                   settings: RunSettings, started: datetime, key: str) -> ReportPaths:
    out_dir = _report_dir(plan, options)
    from .report import write_reports

    return write_reports(plan, records, out_dir=out_dir, output_dir=settings.output_dir,
                         manifest_path=manifest.path, manifest_sha256=manifest.sha256, started_at=started,
                         finished_at=datetime.now(timezone.utc), secrets=(key,))


# --- planning: the stages up to the plan, with the ledger read as it stands ---------------


def load_plan(
    manifest_path: Path,
    ledger: Ledger | None,
    *,
    prices: str | Path | None = None,
    max_usd: Decimal | None = None,
    retry_failed: bool = False,
    resubmit_unknown: bool = False,
) -> tuple[Manifest, Plan]:
    """Load, expand, check and price a manifest, then plan it against the ledger.

    ``ledger`` None means there is none yet (a dry run creates no files);
    ``max_usd`` overrides the manifest's ``budget.max_usd``.
    """
    manifest = load_manifest(manifest_path)
    catalog = load_catalog(prices)
    records = ledger.records(manifest.name) if ledger is not None else []
    with _gc_paused():
        plan = make_plan(
            price_jobs(expand(manifest), catalog), records, campaign=manifest.name, manifest_path=manifest_path,
            catalog=catalog, budget_usd=max_usd if max_usd is not None else manifest.budget_usd,
            retry_failed=retry_failed, resubmit_unknown=resubmit_unknown,
        )
    return manifest, plan


@dataclass(frozen=True, slots=True)
class LedgerView:
    """A manifest planned against its ledger, for the commands that only look."""

    manifest: Manifest
    plan: Plan
    records: tuple[JobRecord, ...]  # every ledger row of the campaign, oldest first
    ledger_path: str  # where the ledger is, as the user named it (a path, or a URL)


def view_campaign(manifest_path: Path, state: str | None, **flags: Any) -> LedgerView:
    """Plan ``manifest_path`` against the ledger at ``state`` without running or writing anything.

    The ledger is opened read-only (on a read-only file system too) and never
    recovered: a ``submitting`` row may be a live run's, and only a run, holding the
    run lock, may decide it crashed. A missing or empty ledger is read as empty and
    not created; a file that is not a ledger is refused, untouched.
    """
    path = ledger_location(state)
    ledger = open_ledger(path, read_only=True)
    if ledger is None:
        manifest, plan = load_plan(manifest_path, None, **flags)
        return LedgerView(manifest, plan, (), path)
    with ledger:
        manifest, plan = load_plan(manifest_path, ledger, **flags)
        records = tuple(ledger.records(plan.campaign))
    return LedgerView(manifest, plan, records, path)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large campaign is planned.

    Planning allocates hundreds of thousands of small objects that all stay alive
    (the jobs) and form no cycles; the collector would rescan the growing heap
    again and again for nothing (a third of plan time at 100,000 jobs). They live
    as long as the plan, so afterwards they are frozen out of its scans too.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
