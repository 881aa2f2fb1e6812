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
from ..plan import Plan, PlannedJob
from .budget import Budget, LocalBudget
from .client import ApiClient
from .context import RunContext
from .downloads import Downloader
from .polling import catalog_prior, make_policy
from .progress import Progress, QuietProgress
from .ratelimit import Pacer
from .retry import Backoff, capped, retrying
from .settings import RunResult, RunSettings
from .stops import Stops
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

    def __init__(self, run: RunContext, budget: Budget, tracker: Tracker) -> None:
        self._run = run
        self.budget = budget
        self._tracker = tracker
        self.pacer = Pacer(run.settings.submits_per_minute / run.settings.time_scale)
        self.submitted = 0

    async def submit_all(self, work: anyio.abc.TaskGroup) -> None:
        """Submit the plan's jobs, each in its own task, until they are all out or a stop."""
        run = self._run
        for index, planned in enumerate(run.plan.to_submit):
            await run.slots.acquire()
            if not run.stops.submitting:
                run.slots.release()
                break
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
            await run.ledger.begin_submit(campaign=run.campaign, key=job.key, label=job.label, shot=job.shot,
                                          request=job.request, credits=cost.credits, cost_usd=cost.usd,
                                          output_path=job.output_path, resubmit=_resubmit(planned))
        except TransitionRefused as exc:
            # Not this run's to submit (another runner of a shared ledger claimed it first).
            run.progress.job(job.label, "not submitted", exc.message)
            return None
        sent_at = time.monotonic()  # the task is created after this: ages count from here
        try:
            answer = await run.client.submit(body)
        except _DECIDED as exc:
            with anyio.CancelScope(shield=True):  # what the answer meant is recorded, Ctrl-C or not
                await self._not_created(job, exc)
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
        self.pacer.succeeded()
        if recorded:
            self.submitted += 1
        run.progress.job(job.label, "submitted", answer.task_id if recorded else f"{answer.task_id} (already recorded)")
        return answer.task_id, sent_at

    async def _not_created(self, job: Job, exc: ApiError) -> None:
        """Record what a submit answered without a task id means for its job."""
        run = self._run
        if isinstance(exc, _RETRYABLE):
            # The service answered without a task (or nothing was sent): safe to try again.
            await run.ledger.release(run.campaign, job.key, exc.error_class, exc.message)
            if isinstance(exc, RateLimited):
                self.pacer.slow_down(capped(exc.retry_after, run.settings.retry_wait_max))
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

    ``events``: a webhook receiver's relay; each event makes the run check that task now.
    ``stops``: to stop the run from outside (the pipeline's signal handling); one of its
    own otherwise. A :class:`~seedance_batch.errors.SeedanceError` that ends a part of the
    run (the ledger cannot be written) is raised as itself; anything else is a bug.
    """
    progress = progress or QuietProgress()
    stops = stops or Stops(progress, give_up_after=settings.give_up_after)
    run = RunContext(plan, settings, client, AsyncLedger(ledger), progress, stops,
                     anyio.Semaphore(settings.max_in_flight))
    policy = make_policy(settings.poll_policy, floor=settings.poll_interval, prior=catalog_prior(plan.catalog))
    tracker = Tracker(run, policy)
    engine = Engine(run, LocalBudget(plan.budget_usd, plan.spent_usd), tracker)
    if events is not None:
        token = anyio.lowlevel.current_token()
        events.connect(lambda event: anyio.from_thread.run_sync(tracker.on_webhook, event.task_id, token=token))
    try:
        await _render(run, engine, tracker, Downloader(run, tracker))
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
        stats={"status_calls": tracker.status_calls, "submit_rate_decreases": engine.pacer.decreases,
               "spent_usd": str(engine.budget.spent)},
    )


async def _render(run: RunContext, engine: Engine, tracker: Tracker, downloader: Downloader) -> None:
    """Jobs left in flight tracked again, the plan's submitted, every one followed to its end."""
    resumable = _resumable(run.plan)
    run.progress.start(len(run.plan.to_submit) + len(resumable), run.plan.budget_usd, run.plan.spent_usd)
    with anyio.CancelScope() as leave:
        run.stops.on_leave(leave.cancel)
        async with anyio.create_task_group() as work:

            def download(item: Tracked) -> None:
                work.start_soon(downloader.fetch, item)

            tracker.on_finished = download
            work.start_soon(tracker.run)
            for planned in resumable:
                await tracker.resume(planned)
            async with anyio.create_task_group() as submits:
                await engine.submit_all(submits)
            tracker.close()  # every submit has ended: no more jobs to track will come


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
