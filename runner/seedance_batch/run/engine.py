"""The run: rate-limited concurrent submits, then tracking and downloads, all through the ledger.

:func:`execute` takes a :class:`~seedance_batch.plan.Plan` and does what it
says: jobs with ``submit=True`` are submitted, ``in-flight`` ones are tracked
and downloaded without paying again. The ledger is written before and after
every submit (see :mod:`seedance_batch.ledger`); the order of events for one submit is::

    ledger: submitting (committed)  ->  POST  ->  ledger: submitted + task_id (committed)
                                              \\-> 429/5xx/not sent: pending, retry later
                                              \\-> sent, no answer: unknown, never again
                                              \\-> 400: failed;  401/402: pending, stop

This module is the submit loop (:class:`Engine`); the parts beside it: the budget
held for submits in the air (:mod:`.budget`), why submitting stops (:mod:`.stops`),
tracking (:mod:`.tracking`), downloads (:mod:`.downloads`). Every ledger call goes
through :class:`~seedance_batch.ledger.AsyncLedger`, off the event loop; a write that
records what the service answered is shielded from cancellation (Ctrl-C twice), so a
task id that came back is never lost between the answer and the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel

from ..errors import (
    AccountError,
    AmbiguousSubmit,
    ApiError,
    InvalidRequest,
    LedgerError,
    RateLimited,
    SeedanceError,
    TransientError,
)
from ..expand import Job
from ..ledger import RESUBMITTABLE, JobState, Ledger, TransitionRefused
from ..ledger.aio import AsyncLedger
from ..ledger.claims import OverBudget
from ..plan import Plan, PlannedJob
from .budget import Budget, LedgerBudget, LocalBudget
from .client import ApiClient
from .context import RunContext
from .downloads import Downloader
from .events import EventFeed, wake_from_receiver
from .polling import catalog_prior, make_policy
from .progress import Progress, QuietProgress
from .ratelimit import Pacer
from .refunds import refunded_during
from .retry import Backoff, capped, retrying
from .settings import RunResult, RunSettings
from .shared_limits import SubmitPacer
from .stops import Stops
from .takeover import SharedTracking, Sharing
from .tracking import Tracked, Tracker

if TYPE_CHECKING:  # the receiver imports the run's parts, not the other way round
    from ..webhooks import EventRelay

__all__ = ["Engine", "RunResult", "RunSettings", "execute"]

_RETRYABLE = (RateLimited, TransientError)
# What a submit may answer without a task id, each decided by _not_created.
_DECIDED = (*_RETRYABLE, AmbiguousSubmit, AccountError, InvalidRequest)


class _StopSubmitting(Exception):
    """Raised inside a retry loop when the run has stopped submitting."""


class Engine:
    """The submit loop: each job of the plan in turn, within the budget and ``max_in_flight``."""

    def __init__(self, run: RunContext, budget: Budget, tracker: Tracker, *, sharing: Sharing | None = None) -> None:
        self._run = run
        self.budget = budget
        self._tracker = tracker
        settings = run.settings
        # The pacer learns the server's rate from its 429s, over the server's window (run/ratelimit.py);
        # on a ledger several runners share, every runner's submits take turns from its one schedule.
        self.pacer: SubmitPacer = sharing.pacer if sharing is not None else Pacer(
            settings.submits_per_minute / settings.time_scale, window=settings.real(settings.rate_window))
        self.sharing = sharing
        self._not_ours: set[str] = set()  # jobs another runner claimed first (a shared ledger)
        self.submitted = 0

    async def submit_all(self, work: anyio.abc.TaskGroup) -> None:
        """Submit the plan's jobs, each in its own task, until they are all out or a stop."""
        run, sharing = self._run, self.sharing
        jobs = run.plan.to_submit if sharing is None else sharing.order(run.plan.to_submit)
        for index, planned in enumerate(jobs):
            await run.slots.acquire()
            if not run.stops.submitting:
                run.slots.release()
                break
            if sharing is not None and sharing.claimed_elsewhere(planned):
                run.slots.release()  # another runner's (as the claims' answers said): skipped
                continue
            cost = planned.priced.cost.usd
            if not await self.budget.reserve(cost):
                run.slots.release()
                assert self.budget.limit is not None
                run.stops.budget(planned.label, cost, self.budget.limit)
                break
            if index == 0:
                # The first submit goes alone: a bad key or an empty account shows on
                # one request, not on a burst of them already in the air.
                await self._submit_and_track(planned)
            else:
                work.start_soon(self._submit_and_track, planned)

    async def _submit_and_track(self, planned: PlannedJob) -> None:
        job, cost = planned.priced.job, planned.priced.cost
        answer: tuple[str, float] | None = None
        try:
            answer = await self._submit(planned)
        finally:
            if answer is None:
                with anyio.CancelScope(shield=True):  # an unknown submit is spent, Ctrl-C or not
                    await self.budget.settle(cost.usd, charged=await self._charged(job))
                self._run.slots.release()
        if answer is not None:
            task_id, sent_at = answer
            await self.budget.settle(cost.usd, charged=True)
            self._run.progress.spend(self.budget.spent)
            self._tracker.follow(job, task_id, sent_at)

    async def _charged(self, job: Job) -> bool:
        if job.key in self._not_ours:
            return False  # another runner's claim: nothing of this runner's was spent on it
        rec = await self._run.ledger.record(self._run.campaign, job.key)
        return rec is not None and rec.charged

    async def _submit(self, planned: PlannedJob) -> tuple[str, float] | None:
        """Submit with retries: (task id, when it was sent), or None when no task was (knowingly) created."""
        run, job = self._run, planned.priced.job
        body = dict(job.request)
        if run.settings.callback_url:
            body["callback_url"] = run.settings.callback_url
        hook = Backoff(run.settings, _RETRYABLE)
        try:
            return await retrying(lambda: self._submit_once(planned, body), on=hook,
                                  attempts=run.settings.max_attempts)
        except _StopSubmitting:
            return None
        except _RETRYABLE as exc:
            # No task was created (the service refused or could not be reached): the job
            # stays pending, with the reason in the ledger, and the next run submits it.
            message = f"not submitted after {run.settings.max_attempts} attempt(s): {exc.message}"
            await run.ledger.note(run.campaign, job.key, "gave_up", {"error": message})
            run.progress.job(job.label, "not submitted", f"{message}; the next run tries again")
            run.stops.not_submitted(exc.message)
        return None

    async def _submit_once(self, planned: PlannedJob, body: Mapping[str, Any]) -> tuple[str, float] | None:
        run, job, cost = self._run, planned.priced.job, planned.priced.cost
        await self.pacer.acquire()
        if not run.stops.submitting:
            raise _StopSubmitting
        try:
            await self._claim(planned)
        except TransitionRefused as exc:
            # Not this run's to submit: the row moved since the plan read it.
            self._not_ours.add(job.key)
            if self.sharing is not None:
                # Another runner claimed it between the look and the claim: a skip like any other, not a
                # problem line (a crashed runner's claim is made unknown by a takeover, which says so).
                self.sharing.skipped += 1
            else:
                run.progress.job(job.label, "not submitted", exc.message)
            return None
        except OverBudget as exc:  # every runner's spending together reached the campaign's budget
            run.stops.budget(job.label, cost.usd, exc.limit)
            return None
        sent_at = time.monotonic()  # the task is created after this: ages count from here
        try:
            answer = await run.client.submit(body)
        except _DECIDED as exc:
            with anyio.CancelScope(shield=True):  # what the answer meant is recorded, Ctrl-C or not
                await self._not_created(job, exc, sent_at)
            if isinstance(exc, _RETRYABLE):
                raise
            return None
        except BaseException:
            # Cancelled (Ctrl-C twice) or a bug mid-POST: the request may be out.
            with anyio.CancelScope(shield=True):
                await run.ledger.unknown(run.campaign, job.key, "the run stopped while this submit was in the air")
            raise
        with anyio.CancelScope(shield=True):  # the task exists: its id reaches the ledger whatever happens
            recorded = await self._recorded(job, answer.task_id, answer.status)
        run.stops.submitted()
        self.pacer.succeeded(sent_at)  # counted by when it was sent: what the server's window counts
        if recorded:
            self.submitted += 1
        run.progress.job(job.label, "submitted", answer.task_id if recorded else f"{answer.task_id} (already recorded)")
        return answer.task_id, sent_at

    async def _claim(self, planned: PlannedJob) -> None:
        """Claim the job in the ledger. On a shared ledger (:mod:`.takeover`), with this runner's terms (the
        budget, the account's in-flight limit: while every runner's jobs in flight fill it, wait and claim
        again), then wait for the submit turn the claim took; nothing is sent if the run stopped meanwhile."""
        run, job, cost = self._run, planned.priced.job, planned.priced.cost
        if self.sharing is None:
            await run.ledger.begin_submit(campaign=run.campaign, key=job.key, label=job.label, shot=job.shot,
                                          request=job.request, credits=cost.credits, cost_usd=cost.usd,
                                          output_path=job.output_path, resubmit=_resubmit(planned))
            return
        got = await self.sharing.claim(planned, _resubmit(planned), self.budget.in_claim)
        if got != "claimed":
            if got == "taken":
                self._not_ours.add(job.key)
            raise _StopSubmitting

    async def _not_created(self, job: Job, exc: ApiError, sent_at: float) -> None:
        """Record what a submit sent at ``sent_at`` (monotonic) answered without a task id means for its job."""
        run = self._run
        if isinstance(exc, _RETRYABLE):
            # The service answered without a task (or nothing was sent): safe to try again.
            await run.ledger.release(run.campaign, job.key, exc.error_class, exc.message)
            if isinstance(exc, RateLimited):
                self.pacer.slow_down(capped(exc.retry_after, run.settings.retry_wait_max), sent_at)
            run.progress.job(job.label, "retry", exc.message)
        elif isinstance(exc, AmbiguousSubmit):
            await run.ledger.unknown(run.campaign, job.key, exc.message)
            run.progress.job(job.label, "unknown", f"{exc.message}; not resubmitted (--resubmit-unknown)")
        elif isinstance(exc, AccountError):
            await run.ledger.release(run.campaign, job.key, exc.error_class, exc.message)
            run.stops.account(exc)
        else:
            await run.ledger.failed(run.campaign, job.key, exc.error_class, exc.message)
            run.progress.job(job.label, "failed", exc.message)

    async def _recorded(self, job: Job, task_id: str, api_status: str | None) -> bool:
        """Commit the task id; False when the row already held it (a repeat: tracked all the same)."""
        try:
            return await self._run.ledger.submitted(self._run.campaign, job.key, task_id, api_status)
        except LedgerError as exc:
            # submitted() refused the row: it recorded the task id in the ledger's events
            # (task_refused) before raising; name it here too, so it is never lost.
            exc.message = f"{exc.message}; the service created task {task_id} for {job.label}"
            raise


async def execute(plan: Plan, settings: RunSettings, *, client: ApiClient, ledger: Ledger,
                  progress: Progress | None = None, events: EventRelay | None = None,
                  stops: Stops | None = None) -> RunResult:
    """Run ``plan``: submit, track, download. Returns how it ended (never raises for job failures).

    ``events``: a webhook receiver's relay: each event it stores makes the run read the
    ledger's new events now (with ``run.callback_url`` set they are read anyway, every
    half service second, so a ``receive`` elsewhere reaches the run too).
    ``stops``: to stop the run from outside (the pipeline's signal handling); one of its
    own otherwise. A :class:`~seedance_batch.errors.SeedanceError` that ends a part of the
    run (the ledger cannot be written) is raised as itself; anything else is a bug.
    """
    progress = progress or QuietProgress()
    client.on_alias = progress.note  # a status word read as another (completed), said once
    stops = stops or Stops(progress, give_up_after=settings.give_up_after)
    # On a shared ledger, a tracking write another runner overtook is not an error (run/takeover.py).
    facade = (SharedTracking if ledger.shared else AsyncLedger)(ledger)
    run = RunContext(plan, settings, client, facade, progress, stops, anyio.Semaphore(settings.max_in_flight))
    # With callbacks, polling is the safety net behind them; their events come through the ledger.
    callbacks = settings.callback_url is not None
    policy = make_policy(settings.webhook_poll_policy if callbacks else settings.poll_policy,
                         floor=settings.poll_interval, prior=catalog_prior(plan.catalog))
    tracker = Tracker(run, policy)
    feed = EventFeed(run.ledger, plan.campaign, tracker.on_webhook, time_scale=settings.time_scale) if callbacks \
        else None
    tracker.pacer.window = settings.real(settings.rate_window)  # status 429s are learned from too
    sharing = Sharing.for_run(run, tracker) if ledger.shared else None  # many runners on one ledger (run/takeover.py)
    budget = (LocalBudget if sharing is None else LedgerBudget)(plan.budget_usd, plan.spent_usd)
    engine = Engine(run, budget, tracker, sharing=sharing)
    if events is not None and feed is not None:
        # The run's own receiver has just stored an event: its tracker is woken at once (the feed
        # reads the same event from the ledger later, a duplicate that changes nothing).
        events.connect(wake_from_receiver(tracker.on_webhook, anyio.lowlevel.current_token()))
    try:
        await _render(run, engine, tracker, Downloader(run, tracker), feed)
    except Exception as error:  # a part of the run failed; a task group hands its tasks' errors grouped
        raise _user_error(error) from None
    finally:
        if events is not None:
            events.connect(None)
        progress.close()
    keys = {p.priced.job.key for p in plan.jobs}
    records = [r for r in await run.ledger.records(plan.campaign) if r.key in keys]
    return RunResult(
        records=records, planned=len(plan.jobs), interrupted=stops.interrupted, stopped_by_budget=stops.by_budget,
        error=stops.account_error, submitted=engine.submitted,
        stats={"status_calls": tracker.status_calls, "callbacks": tracker.callbacks,
               "submit_rate_decreases": engine.pacer.decreases,
               # what the service refunded for tasks that failed in this run is not spent
               "spent_usd": str(engine.budget.spent - refunded_during(plan.jobs, records)),
               "rate_limited": {"submit": engine.pacer.limited, "status": tracker.pacer.limited},
               "submits_per_minute_learned": _per_minute(engine.pacer.ceiling, settings),
               **({} if sharing is None else {"taken_over": sharing.taken, "skipped_claimed": sharing.skipped,
                                              "lease_lapses": sharing.lapsed})},
    )


async def _render(run: RunContext, engine: Engine, tracker: Tracker, downloader: Downloader,
                  feed: EventFeed | None) -> None:
    """Jobs left in flight tracked again, the plan's submitted, every one followed to its end
    (``feed``: callbacks read from the ledger while the tracker runs)."""
    sharing = engine.sharing
    # On a shared ledger, only what no live runner tracks is this runner's to track.
    resumable = _resumable(run.plan) if sharing is None else await sharing.join()
    run.progress.start(len(run.plan.to_submit) + len(resumable), run.plan.budget_usd, run.plan.spent_usd)
    async with anyio.create_task_group() as lease:
        if sharing is not None:
            lease.start_soon(sharing.run)  # the lease renewed, dead runners' tasks taken over
        try:
            await _work(run, engine, tracker, downloader, feed, resumable)
        finally:
            if sharing is not None:
                await sharing.leave()  # its rows are free for the others at once


async def _work(run: RunContext, engine: Engine, tracker: Tracker, downloader: Downloader,
                feed: EventFeed | None, resumable: list[PlannedJob]) -> None:
    """The run's tasks: tracking (and with it the downloads), callbacks, then the submits."""
    sharing = engine.sharing
    with anyio.CancelScope() as leave:
        run.stops.on_leave(leave.cancel)
        async with anyio.create_task_group() as work:

            def download(item: Tracked) -> None:
                work.start_soon(downloader.fetch, item)

            tracker.on_finished = download
            if feed is not None:
                await feed.start()
                work.start_soon(feed.run)
            work.start_soon(_track, tracker, feed, sharing)
            for planned in resumable:
                await tracker.resume(planned)
            async with anyio.create_task_group() as submits:
                await engine.submit_all(submits)
            if sharing is not None:
                await sharing.until_settled()  # while live runners hold jobs of the plan in flight
            tracker.close()  # every submit has ended: no more jobs to track will come


async def _track(tracker: Tracker, feed: EventFeed | None, sharing: Sharing | None) -> None:
    """Follow every job to its end; then no more callbacks are read, nor orphaned tasks taken over."""
    await tracker.run()
    if feed is not None:
        feed.stop()
    if sharing is not None:
        sharing.tracking_over()


def _per_minute(rate: float | None, settings: RunSettings) -> float | None:
    """A pacer's rate (calls per real second) as calls per service minute, as the settings say rates."""
    return None if rate is None else round(rate * 60 * settings.time_scale, 2)


def _resubmit(planned: PlannedJob) -> tuple[JobState, ...]:
    """The row state the user asked to submit again (--retry-failed, --resubmit-unknown), if any.

    The plan submits a job whose row is failed or unknown only when asked to, so a
    row in one of them here is the user's word; the ledger refuses the claim otherwise.
    """
    rec = planned.record
    if rec is None or rec.key != planned.priced.job.key or rec.state not in RESUBMITTABLE:
        return ()
    return (rec.state,)


def _resumable(plan: Plan) -> list[PlannedJob]:
    """Jobs an earlier run left in flight: tracked (or downloaded) again, never paid for again."""
    return [p for p in plan.jobs if not p.submit and p.record is not None and p.record.task_id
            and p.record.state.in_flight]


def _user_error(error: Exception) -> BaseException:
    """The error to show for a run that one of its tasks ended: a user's error (the ledger
    cannot be written...) as its one line; anything else (a bug) as it came, traceback and all."""
    for leaf in _leaves(error):
        if isinstance(leaf, SeedanceError):
            return leaf
    return error


def _leaves(error: BaseException) -> Iterator[BaseException]:
    """The errors inside an exception group (found by its ``exceptions``: Python 3.10 has no such type)."""
    inner = getattr(error, "exceptions", None)
    if isinstance(inner, tuple):
        for each in inner:
            yield from _leaves(each)
    else:
        yield error
