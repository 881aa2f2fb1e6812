"""The run: rate-limited concurrent submits, adaptive tracking, downloads, all through the ledger.

:func:`execute` takes a :class:`~seedance_batch.plan.Plan` and does what it
says: jobs with ``submit=True`` are submitted, ``in-flight`` ones are tracked
and downloaded without paying again. The ledger is written before and after
every submit (see ledger.py); the order of events for one submit is::

    ledger: submitting (committed)  ->  POST  ->  ledger: submitted + task_id (committed)
                                              \\-> 429/5xx/not sent: pending, retry later
                                              \\-> sent, no answer: unknown, never again
                                              \\-> 400: failed;  401/402: pending, stop

Stopping: a 401/402 stops submitting at once (every later submit would fail
the same way) and tracking continues; the budget stops it before the job that
would cross it; Ctrl-C once stops submitting and keeps tracking, twice leaves
at once (a submit in the air becomes ``unknown``). See :class:`RunResult`.

Downloading: a paid render whose video cannot be saved now (its target is or became
unsafe, what arrived is not the video, ``run.timeout`` passed while downloading, the
disk is full) stays ``finished``, never ``failed``: a later run downloads it without
paying again. A task id an older version stored that cannot be used is left alone.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import stamina
import stamina.instrumentation

from ..errors import (
    AccountError,
    AmbiguousSubmit,
    ApiError,
    InvalidRequest,
    LedgerError,
    RateLimited,
    SeedanceError,
    TransientError,
    UsageError,
)
from ..expand import Job
from ..ledger import JobState, Ledger
from ..models import max_video_bytes
from ..plan import Plan, PlannedJob
from ..safetext import one_line, service_text
from ..times import seconds_since
from ..webhooks import EventRelay
from .client import MAX_TASK_ID, ApiClient, TaskStatus, task_id_problem
from .downloads import BadVideo, Downloaded, UrlExpired, download, safe_target
from .polling import Bucket, RenderClock
from .progress import Progress, QuietProgress
from .ratelimit import Pacer
from .settings import Backoff, RunResult, RunSettings, capped
from .tracking import Tracked, Tracker

__all__ = ["RunResult", "RunSettings", "execute"]

DOWNLOAD_CONCURRENCY = 4
STATUS_CONCURRENCY = 8
URL_REFRESHES = 3
# Jobs in a row whose every submit attempt failed (429s, 5xx, unreachable) before the run
# stops submitting: the service is down or the network is, and grinding on costs time only.
GIVE_UP_STOP = 3
# How much of a task id from the ledger is shown: an older version may have stored any text.
TASK_ID_SHOWN = MAX_TASK_ID

if sys.version_info < (3, 11):  # pragma: no cover - anyio depends on the backport there
    from exceptiongroup import BaseExceptionGroup


class _StopSubmitting(Exception):
    """Raised inside a retry loop when the run has stopped submitting."""


class Engine:
    """One run's moving parts. Use :func:`execute`."""

    def __init__(self, plan: Plan, settings: RunSettings, client: ApiClient, ledger: Ledger, progress: Progress):
        self.plan, self.settings, self.client, self.ledger, self.progress = plan, settings, client, ledger, progress
        self.campaign = plan.campaign
        scale = settings.time_scale
        self.submit_pacer = Pacer(settings.submits_per_minute / scale)
        self.status_pacer = Pacer(settings.status_per_minute / scale)
        self.slots = anyio.Semaphore(settings.max_in_flight)
        self.downloads = anyio.CapacityLimiter(DOWNLOAD_CONCURRENCY)
        self.tracker = Tracker(self._poll, RenderClock(floor=settings.poll_interval), time_scale=scale,
                               concurrency=STATUS_CONCURRENCY)
        self.spent = plan.spent_usd
        self.reserved = Decimal(0)
        self.stop_reason: str | None = None
        self.error: SeedanceError | None = None
        self.stopped_by_budget = False
        self.interrupted = False
        self.submitted = 0
        self.gave_up_in_a_row = 0
        self.status_calls = 0
        self._signalled = 0
        self._by_task: dict[str, Tracked] = {}

    # --- the whole run -----------------------------------------------------------------------

    def on_webhook(self, task_id: str) -> None:
        """A callback event arrived for ``task_id``: check its status now, not at its next poll."""
        item = self._by_task.get(task_id)
        if item is not None and not item.ended:
            self.tracker.reschedule(item, soon=True)

    async def run(self, *, handle_signals: bool) -> None:
        self.progress.start(len(self.plan.to_submit) + len(self._resumable()), self.plan.budget_usd, self.spent)
        async with anyio.create_task_group() as outer:
            if handle_signals:
                outer.start_soon(self._watch_signals, outer.cancel_scope)
            async with anyio.create_task_group() as work:
                self._work = work
                work.start_soon(self.tracker.run)
                for planned in self._resumable():
                    self._resume(planned, work)
                async with anyio.create_task_group() as submits:
                    await self._submit_all(submits)
                self.tracker.close()  # every submit has ended: no more jobs to track will come
            outer.cancel_scope.cancel()

    def _resumable(self) -> list[PlannedJob]:
        return [p for p in self.plan.jobs if not p.submit and p.record is not None and p.record.task_id
                and p.record.key == p.priced.job.key and p.record.state.in_flight]

    def _resume(self, planned: PlannedJob, work: anyio.abc.TaskGroup) -> None:
        rec = planned.record
        assert rec is not None and rec.task_id is not None
        downloadable = rec.state is JobState.FINISHED and bool(rec.file_url)
        problem = task_id_problem(rec.task_id, self.client.secrets)
        shown = one_line(service_text(rec.task_id, self.client.secrets, TASK_ID_SHOWN))
        if problem is not None and not downloadable:
            # An older version stored an id that cannot be asked about (nor put into a URL):
            # the row is left as it is (the task may exist; it is never resubmitted on its
            # own) and the rest of the run goes on.
            self.ledger.note(self.campaign, rec.key, "not_tracked", {"error": f"unusable task id: {problem}"})
            self.progress.job(planned.label, "not tracked",
                              f"its task id cannot be used ({problem}): {shown}; check the APIDot dashboard")
            return
        item = self._tracked(planned.priced.job, rec.task_id, seconds_since(rec.submitted_at), resumed=True)
        item.holds_slot = _try_acquire(self.slots)
        self.progress.job(planned.label, "tracking", shown)
        if downloadable:
            item.file_url = rec.file_url
            item.ended = True  # straight to the download; no polls
            work.start_soon(self._fetch, item)
        else:
            self.tracker.add(item)

    def _tracked(self, job: Job, task_id: str, age: float, *, resumed: bool) -> Tracked:
        now = time.monotonic()
        started = now - age
        window = self.settings.real(self.settings.timeout)
        deadline = now + window if resumed else started + window
        data = job.request["input"]
        bucket = Bucket(job.model, str(data.get("resolution")), int(data.get("duration", 0)))
        item = Tracked(job=job, task_id=task_id, bucket=bucket, started=started, deadline=deadline)
        self._by_task[task_id] = item
        return item

    async def _watch_signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                self._signalled += 1
                if signum == signal.SIGINT and self._signalled == 1:
                    self._stop("interrupted: no new submits; tracking what is in flight "
                               "(Ctrl-C again to leave now; the ledger is saved either way)")
                    self.interrupted = True
                    continue
                self.progress.note("interrupted: leaving now; run the same command again to resume")
                self.interrupted = True
                scope.cancel()
                return

    def _stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.progress.note(reason)

    # --- submitting ---------------------------------------------------------------------------

    async def _submit_all(self, work: anyio.abc.TaskGroup) -> None:
        for index, planned in enumerate(self.plan.to_submit):
            await self.slots.acquire()
            if self.stop_reason is not None:
                self.slots.release()
                break
            cost = planned.priced.cost.usd
            budget = self.plan.budget_usd
            if budget is not None and self.spent + self.reserved + cost > budget:
                self.slots.release()
                self.stopped_by_budget = True
                self._stop(f"budget: {planned.label} (${cost:.2f}) would take the spend past ${budget:.2f}; "
                           "no more submits")
                break
            self.reserved += cost
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
            answer = await self._submit(job, cost.credits, cost.usd)
        finally:
            if answer is None:
                self.reserved -= cost.usd
                if self._charged(job):
                    self.spent += cost.usd  # unknown: counted as spent
                self.slots.release()
        if answer is not None:
            task_id, sent_at = answer
            self.reserved -= cost.usd
            self.spent += cost.usd
            self.progress.spend(self.spent)
            item = self._tracked(job, task_id, time.monotonic() - sent_at, resumed=False)
            item.holds_slot = True
            self.tracker.add(item)

    def _charged(self, job: Job) -> bool:
        rec = self.ledger.record(self.campaign, job.key)
        return rec is not None and rec.charged

    async def _submit(self, job: Job, credits: int, usd: Decimal) -> tuple[str, float] | None:
        """Submit with retries: (task id, when it was sent), or None when no task was (knowingly) created."""
        body = dict(job.request)
        if self.settings.callback_url:
            body["callback_url"] = self.settings.callback_url
        hook = Backoff(self.settings, (RateLimited, TransientError))
        try:
            async for attempt in stamina.retry_context(on=hook, attempts=self.settings.max_attempts, timeout=None):
                with attempt:
                    return await self._submit_once(job, body, credits, usd)
        except _StopSubmitting:
            return None
        except (RateLimited, TransientError) as exc:
            # No task was created (the service refused or could not be reached): the job
            # stays pending, with the reason in the ledger, and the next run submits it.
            message = f"not submitted after {self.settings.max_attempts} attempt(s): {exc.message}"
            self.ledger.note(self.campaign, job.key, "gave_up", {"error": message})
            self.progress.job(job.label, "not submitted", f"{message}; the next run tries again")
            self.gave_up_in_a_row += 1
            if self.gave_up_in_a_row >= GIVE_UP_STOP:
                self._stop(f"stopped submitting: {self.gave_up_in_a_row} jobs in a row could not be submitted "
                           f"({exc.message}); tracking what is in flight; run again later")
        return None

    async def _submit_once(self, job: Job, body: Mapping[str, Any], credits: int,
                           usd: Decimal) -> tuple[str, float] | None:
        await self.submit_pacer.acquire()
        if self.stop_reason is not None:
            raise _StopSubmitting
        self.ledger.begin_submit(campaign=self.campaign, key=job.key, label=job.label, shot=job.shot,
                                 request=job.request, credits=credits, cost_usd=usd, output_path=job.output_path)
        sent_at = time.monotonic()  # the task is created after this: ages count from here
        try:
            answer = await self.client.submit(body)
        except (RateLimited, TransientError) as exc:
            # The service answered without a task (or nothing was sent): safe to try again.
            self.ledger.release(self.campaign, job.key, exc.error_class, exc.message)
            if isinstance(exc, RateLimited):
                self.submit_pacer.slow_down(capped(exc.retry_after, self.settings.retry_wait_max))
            self.progress.job(job.label, "retry", exc.message)
            raise
        except AmbiguousSubmit as exc:
            self.ledger.unknown(self.campaign, job.key, exc.message)
            self.progress.job(job.label, "unknown", f"{exc.message}; not resubmitted (--resubmit-unknown)")
            return None
        except AccountError as exc:
            self.ledger.release(self.campaign, job.key, exc.error_class, exc.message)
            self._account_error(exc)
            return None
        except InvalidRequest as exc:
            self.ledger.failed(self.campaign, job.key, exc.error_class, exc.message)
            self.progress.job(job.label, "failed", exc.message)
            return None
        except BaseException:
            # Cancelled (Ctrl-C twice) or a bug mid-POST: the request may be out.
            self.ledger.unknown(self.campaign, job.key, "the run stopped while this submit was in the air")
            raise
        try:
            self.ledger.submitted(self.campaign, job.key, answer.task_id, answer.status)
        except LedgerError as exc:
            # submitted() refused the row: it recorded the task id in the ledger's events (task_refused)
            # before raising; name it here too, so it is never lost.
            exc.message = f"{exc.message}; the service created task {answer.task_id} for {job.label}"
            raise
        self.gave_up_in_a_row = 0
        self.submit_pacer.succeeded()
        self.submitted += 1
        self.progress.job(job.label, "submitted", answer.task_id)
        return answer.task_id, sent_at

    def _account_error(self, exc: AccountError) -> None:
        if self.error is None:
            self.error = exc
        self._stop(f"stopped submitting: {exc.format()}; tracking what is in flight")

    # --- tracking -----------------------------------------------------------------------------

    async def _poll(self, item: Tracked) -> None:
        status = await self._status(item)
        if item.ended:
            return  # ended meanwhile (Ctrl-C twice, the account stopped): nothing more to do
        now = time.monotonic()
        age = self.tracker.age(item, now)
        if status is None:
            pass  # no usable answer: try again on schedule (or give up at the deadline)
        elif status.finished:
            first_learn = not self.tracker.clock.learned(item.bucket)
            self.tracker.clock.observe(item.bucket, finished_at_age=age, late_polls=item.late_polls,
                                       aimed_at=item.aimed_at)
            if first_learn:
                self.tracker.learned()
            item.file_url = status.file_urls[0] if status.file_urls else None
            item.ended = True  # no more polls (a late webhook must not start a second download)
            self.ledger.finished(self.campaign, item.job.key, item.file_url)
            # downloaded in its own task: a status slot is not held for a whole file
            self._work.start_soon(self._fetch, item)
            return
        elif status.failed:
            self._end(item, "failed", status.error_message or "the service reported the task failed")
            return
        else:
            self.ledger.status_seen(self.campaign, item.job.key, status.status)
        item.polls += 1
        item.last_age = age
        if item.aimed_at is not None and age >= item.aimed_at:
            item.late_polls += 1
        if isinstance(self.error, AccountError) and status is None:
            self._release(item)  # cannot ask any more: the task id stays for a later run
        elif now >= item.deadline:
            self._end(item, "timed_out", f"still {status.status if status else 'unanswered'} after "
                                         f"{self.settings.timeout:g} s; a later run resumes tracking it")
        else:
            self.tracker.reschedule(item)

    async def _status(self, item: Tracked) -> TaskStatus | None:
        if task_id_problem(item.task_id, self.client.secrets) is not None:
            return None  # an older version's unusable id (see _resume): never put into a URL
        hook = Backoff(self.settings, (RateLimited, TransientError, InvalidRequest))
        try:
            async for attempt in stamina.retry_context(on=hook, attempts=3, timeout=None):
                with attempt:
                    await self.status_pacer.acquire()
                    self.status_calls += 1
                    try:
                        status = await self.client.status(item.task_id)
                    except RateLimited as exc:
                        self.status_pacer.slow_down(capped(exc.retry_after, self.settings.retry_wait_max))
                        raise
                    self.status_pacer.succeeded()
                    return status
        except AccountError as exc:
            self._account_error(exc)
        except ApiError as exc:
            self.ledger.note(self.campaign, item.job.key, "status_error", {"error": exc.message})
        return None

    def _end(self, item: Tracked, how: str, message: str) -> None:
        if how == "failed":
            self.ledger.failed(self.campaign, item.job.key, "task_failed", message, api_status="failed")
        else:
            self.ledger.timed_out(self.campaign, item.job.key, message)
        self.progress.job(item.job.label, how, message)
        self._release(item)

    def _release(self, item: Tracked) -> None:
        item.ended = True
        if item.holds_slot:
            item.holds_slot = False
            self.slots.release()

    # --- downloading --------------------------------------------------------------------------

    async def _fetch(self, item: Tracked) -> None:
        """Download a finished job's video; refresh an expired URL by asking for the status again.

        A download that cannot be done now (the target is or became unsafe, what arrived
        is not the video, run.timeout passed) leaves the job ``finished``, never ``failed``:
        the render is paid for, and a later run downloads it without paying again.
        """
        try:
            async with self.downloads:
                got = await self._download_in_time(item)
        except OSError as exc:
            self._cannot_save(item, exc)
            return
        finally:
            self._release(item)
        if got is None:
            return
        self.ledger.downloaded(self.campaign, item.job.key, item.job.output_path, got.size, got.sha256)
        self.progress.job(item.job.label, "done", f"{got.size} bytes")

    async def _download_in_time(self, item: Tracked) -> Downloaded | None:
        """The download, within ``run.timeout`` (a body dripping a byte at a time trips no
        read timeout); None when it did not happen (the reason is in the ledger)."""
        try:
            target = safe_target(self.settings.output_dir, item.job.output_path)
            with anyio.move_on_after(self.settings.real(self.settings.timeout)):
                return await self._download_with_refresh(item, target)
        except UsageError as exc:
            self._not_downloaded(item, "unsafe_target", exc.format())
            return None
        self._not_downloaded(item, "download_failed",
                             f"download: not done within run.timeout ({self.settings.timeout:g} s)")
        return None

    def _not_downloaded(self, item: Tracked, kind: str, message: str) -> None:
        self.ledger.note(self.campaign, item.job.key, kind, {"error": message})
        self.progress.job(item.job.label, "failed", f"{message}; a later run downloads it")

    def _cannot_save(self, item: Tracked, exc: OSError) -> None:
        """The video could not be written (disk full, read-only folder): the job stays
        ``finished`` (a later run downloads it without paying again), and no more
        renders are paid for that could not be saved either."""
        why = exc.strerror or type(exc).__name__
        where = self.settings.output_dir / item.job.output_path
        self.ledger.note(self.campaign, item.job.key, "download_failed", {"error": f"cannot write {where}: {why}"})
        self.progress.job(item.job.label, "failed", f"cannot write {where}: {why}; a later run downloads it")
        self._stop(f"stopped submitting: cannot write videos under {self.settings.output_dir} ({why}); "
                   "tracking what is in flight; free space or fix the folder, then run again")

    async def _download_with_refresh(self, item: Tracked, target: Path) -> Downloaded | None:
        limit = max_video_bytes(item.job.request, self.plan.catalog)
        for refresh in range(URL_REFRESHES + 1):
            if item.file_url is None or refresh:
                status = await self._status(item)
                item.file_url = status.file_urls[0] if status and status.file_urls else None
                if item.file_url is None:
                    continue
                self.ledger.finished(self.campaign, item.job.key, item.file_url, source="refresh")
            retry = _download_retry(Backoff(self.settings, (TransientError,)))
            try:
                async for attempt in stamina.retry_context(on=retry, attempts=self.settings.max_attempts,
                                                           timeout=None):
                    with attempt:
                        return await download(self.client.files, item.file_url, target, max_bytes=limit,
                                              root=self.settings.output_dir)
            except UrlExpired:
                self.ledger.note(self.campaign, item.job.key, "url_expired", {"refresh": refresh + 1})
            except TransientError as exc:
                self.ledger.note(self.campaign, item.job.key, "download_failed", {"error": exc.message})
                self.progress.job(item.job.label, "failed", f"{exc.message}; a later run downloads it")
                return None
        self.progress.job(item.job.label, "failed", "download failed; a later run tries again")
        return None


def _download_retry(hook: Backoff) -> Callable[[Exception], bool | float]:
    """``hook``, but never for an expired URL (it is refreshed instead) nor a body that is
    not the video (the same URL would send it again; a later run tries)."""
    return lambda exc: False if isinstance(exc, (UrlExpired, BadVideo)) else hook(exc)


def _user_error(group: BaseExceptionGroup) -> BaseException:
    """The error to show for a run that one of its tasks ended: a user's error (the ledger
    cannot be written...) as its one line; anything else (a bug) as it came, traceback and all."""
    for error in _leaves(group):
        if isinstance(error, SeedanceError):
            return error
    return group


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def _try_acquire(semaphore: anyio.Semaphore) -> bool:
    try:
        semaphore.acquire_nowait()
    except anyio.WouldBlock:
        return False
    return True


async def execute(plan: Plan, settings: RunSettings, *, client: ApiClient, ledger: Ledger,
                  progress: Progress | None = None, handle_signals: bool | None = None,
                  events: EventRelay | None = None) -> RunResult:
    """Run ``plan``: submit, track, download. Returns how it ended (never raises for job failures).

    ``events``: a webhook receiver's relay; each event makes the engine check that task now.
    """
    progress = progress or QuietProgress()
    if handle_signals is None:
        handle_signals = threading.current_thread() is threading.main_thread()
    stamina.instrumentation.set_on_retry_hooks([])  # retries are logged in the ledger, not on stderr
    engine = Engine(plan, settings, client, ledger, progress)
    if events is not None:
        token = anyio.lowlevel.current_token()
        events.connect(lambda event: anyio.from_thread.run_sync(engine.on_webhook, event.task_id, token=token))
    try:
        await engine.run(handle_signals=handle_signals)
    except BaseExceptionGroup as group:
        raise _user_error(group) from None
    finally:
        if events is not None:
            events.connect(None)
        progress.close()
    keys = {p.priced.job.key for p in plan.jobs}
    records = [r for r in ledger.records(plan.campaign) if r.key in keys]
    return RunResult(
        records=records, planned=len(plan.jobs), interrupted=engine.interrupted, stopped_by_budget=engine.stopped_by_budget,
        error=engine.error, submitted=engine.submitted,
        stats={"status_calls": engine.status_calls, "submit_rate_decreases": engine.submit_pacer.decreases,
               "spent_usd": str(engine.spent)},
    )
