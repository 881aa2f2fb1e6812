"""The one orchestrator: manifest -> expand -> price -> plan -> (simulator) -> run -> reports.

The stages are pure functions of plain data; this module composes them, in order,
with the I/O around them: reading the manifest and the price file, the ledger (read
only for :func:`view_campaign`; run lock and crash recovery for :func:`run_manifest`),
the API credentials (:mod:`.environment`; never the manifest), the in-process
simulator for ``--simulate``, the webhook receiver, the run's signals (Ctrl-C once:
no new submits; twice, or SIGTERM: leave now), and the reports. The CLI parses,
calls one of these, and prints.

A ledger that fails while the run renders (a full disk, a dropped database
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .environment import credentials
from .errors import Interrupted, LedgerError, LedgerFailed, Location, SeedanceError, UsageError
from .ledger import Decision, JobRecord, Ledger, Verdict, ledger_location, open_ledger, shown_location
from .manifest import Manifest, load_manifest
from .models import load_catalog
from .plan import Plan, check_budget, make_plan
from .selection import Selection

if TYPE_CHECKING:  # the run's stack (httpx, anyio, starlette) is imported only by run_manifest
    from .media import MediaReport
    from .report import ReportPaths
    from .review import RunningReview
    from .run.progress import Progress
    from .run.settings import RunResult, RunSettings
    from .run.stops import Stops
    from .webhooks import EventRelay

__all__ = ["LedgerView", "ReviewOptions", "RunOptions", "RunOutcome", "check_plan_media", "load_plan", "review_campaign",
           "run_manifest", "view_campaign"]

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
    from .run.settings import RunSettings

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
    from .media import check_before_run

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
    """With ``run.callback_url``: the run's secret callback URL, and its receiver serving for the run's length
    (on ``--listen``, default 127.0.0.1:8787; a free loopback port under ``--simulate``; none with
    ``--listen off``, where a ``seedance-batch receive`` elsewhere writes the events): see :mod:`.receiving`."""
    from .receiving import run_callbacks

    with run_callbacks(ledger, settings, campaign=campaign, listen=options.listen, simulate=options.simulate,
                       verify=options.verify, relay=relay) as settings:
        yield settings


def _listen_address(listen: str | None) -> tuple[str, int] | None:
    from .receiving import listen_address

    return listen_address(listen)


@contextmanager
def _service(api: tuple[str, str] | None, options: RunOptions) -> Iterator[tuple[str, str]]:
    """APIDot (or $APIDOT_BASE_URL), or the simulator started here on a free port."""
    if api is not None:
        yield api
        return
    from .simulator import Faults, SimulatorConfig, run_simulator

    # Every task ends here: `run --simulate` is the README's first command, and one of the
    # real service's stalled tasks (the standalone simulator keeps them) would make a first
    # try wait for run.timeout and exit 1.
    config = SimulatorConfig(time_scale=_time_scale(options), prices=options.prices, faults=Faults(task_stuck=0))
    with run_simulator(config) as sim:
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
    only: Sequence[str] = (),
    profile: str | None = None,
    approved: bool = False,
) -> tuple[Manifest, Plan]:
    """Load, expand, check and price a manifest, then plan it against the ledger.

    ``ledger`` None means there is none yet (a dry run creates no files);
    ``max_usd`` overrides the manifest's ``budget.max_usd``; ``only`` (``--only``
    patterns) plans just the jobs they select; ``profile`` (``--profile``) the profile
    planned (None: the manifest's ``profile:``), ``approved`` (``--approved``) its
    approved takes only (see :mod:`.promotion`).
    """
    from .promotion import choose_profile

    selection = Selection.of(only)  # an empty pattern is refused before anything is read
    manifest = load_manifest(manifest_path)
    catalog = load_catalog(prices)
    records = ledger.records(manifest.name) if ledger is not None else []
    decisions = ledger.decisions(manifest.name) if ledger is not None else []
    with _gc_paused():
        chosen = choose_profile(manifest, catalog, decisions, profile=profile, approved=approved)
        plan = make_plan(
            chosen.jobs, records, campaign=manifest.name, manifest_path=manifest_path,
            catalog=catalog, budget_usd=max_usd if max_usd is not None else manifest.budget_usd,
            retry_failed=retry_failed, resubmit_unknown=resubmit_unknown, only=selection,
            others=chosen.others, profiles=chosen.view, decisions=decisions,
        )
    return manifest, plan


@dataclass(frozen=True, slots=True)
class LedgerView:
    """A manifest planned against its ledger, for the commands that only look."""

    manifest: Manifest
    plan: Plan
    records: tuple[JobRecord, ...]  # every ledger row of the campaign, oldest first
    ledger_path: str  # where the ledger is, as the user may see it (a path, or a URL without its password)
    decisions: tuple[Decision, ...] = ()  # the review's current decisions of the campaign
    location: str = ""  # where to open it again (a URL may hold its password: never shown)


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
        return LedgerView(manifest, plan, (), shown_location(path), location=path)
    with ledger:
        manifest, plan = load_plan(manifest_path, ledger, **flags)
        records = tuple(ledger.records(plan.campaign))
        decisions = tuple(ledger.decisions(plan.campaign))
    return LedgerView(manifest, plan, records, shown_location(path), decisions, location=path)


def check_plan_media(view: LedgerView) -> MediaReport:
    """``plan --check-media``: the source media of the jobs to submit, with the ledger as their cache
    (opened for writing for that alone: see :mod:`.media.preflight`)."""
    from .media import check_for_plan

    return check_for_plan(view.plan, view.location or view.ledger_path)


# --- review: the campaign's takes in the browser, decisions into the ledger ---------------------


@dataclass(frozen=True, slots=True)
class ReviewOptions:
    """What ``review`` was asked for (None: the default)."""

    manifest: Path
    state: str | None = None
    prices: str | None = None
    profile: str | None = None
    listen: str | None = None
    reviewer: str | None = None


def review_campaign(options: ReviewOptions, *, announce: Callable[[RunningReview, Plan], None]) -> int:
    """Serve the review of a manifest until Ctrl-C; how many of its takes are approved or rejected then.

    The ledger is opened for writing (each decision is written at once) but never
    locked for a run nor recovered: a run may render the campaign meanwhile, and a
    reload shows what it finished. ``announce`` gets the review once it answers.
    """
    from .environment import api_keys
    from .review import ReviewCampaign, parse_listen, review_until_signal, reviewer_name

    host, port = parse_listen(options.listen)
    reviewer = reviewer_name(options.reviewer)
    with open_ledger(ledger_location(options.state)) as ledger:
        manifest, plan = load_plan(options.manifest, ledger, prices=options.prices, profile=options.profile)
        campaign = ReviewCampaign(plan=plan, manifest_path=str(manifest.path), manifest_sha256=manifest.sha256,
                                  output_dir=Path(manifest.output_dir), reviewer=reviewer,
                                  profile=plan.profiles.profile if plan.profiles is not None else None,
                                  secrets=api_keys())
        try:
            review_until_signal(campaign, ledger, host=host, port=port, announce=lambda review: announce(review, plan))
        except UsageError as exc:  # serving's words name the simulator's --host/--port
            raise UsageError(f"cannot listen on --listen {host}:{port}: {exc.message.rsplit(': ', 1)[-1]}",
                             hint="pass --listen HOST:PORT with an IPv4 address of this machine and a free port "
                                  "(0: any)") from None
        keys = {planned.priced.job.key for planned in plan.jobs}
        return sum(1 for d in ledger.decisions(plan.campaign) if d.key in keys and d.verdict is not Verdict.UNDECIDED)


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
