"""Following every job that has a task id: asking, and what each answer means.

:class:`Tracker` takes a job as soon as its task id is committed (or at start-up, for
tasks an earlier run left in flight), has its status asked when the poll policy says
(:mod:`.polling`, scheduled by :mod:`.schedule`), retries a status call that failed,
records what it learns in the ledger, and lets go of the job's in-flight slot when it
ends: finished (then downloaded, :mod:`.downloads`), failed, timed out, or given up.

A callback (:meth:`Tracker.on_webhook`, fed by :mod:`.events`) only moves the job's next
status check to now: the status endpoint decides. If that check finds the task still
rendering (the callback came first, or was forged), it is checked once more shortly,
then the policy takes over again.

Status calls never exceed ``run.status_per_minute`` (the pacer is the schedule's turn);
``progress`` in their answers feeds the policy and the live display.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import anyio

from ..errors import AccountError, ApiError, InvalidRequest, RateLimited, TransientError
from ..expand import Job
from ..ledger import JobState
from ..plan import PlannedJob
from ..safetext import one_line, service_text
from ..times import seconds_since
from .answers import TaskStatus
from .client import MAX_TASK_ID, task_id_problem
from .context import RunContext
from .polling import Bucket, PollPolicy, Seen
from .ratelimit import Pacer
from .refunds import record_refund
from .retry import Backoff, capped, retrying
from .schedule import PollQueue, Tracked

__all__ = ["PollQueue", "Tracked", "Tracker"]

# How much of a task id from the ledger is shown: an older version may have stored any text.
TASK_ID_SHOWN = MAX_TASK_ID
# After a callback said a task ended and its status did not: ask again this much later
# (service seconds; at least two poll intervals), once.
HINT_RECHECK = 1.0
# After a status check that got no usable answer (its retries spent): ask again after this,
# doubling while the service does not answer, up to the maximum (service seconds).
UNANSWERED_GAP = 1.0
UNANSWERED_MAX_GAP = 60.0
# The live display hears about progress at most this often (real seconds).
PROGRESS_EVERY = 0.5


class Tracker:
    """Every job with a task id, from its task id to its end. ``on_finished`` downloads a finished one."""

    def __init__(self, run: RunContext, policy: PollPolicy) -> None:
        self._run = run
        settings = run.settings
        self.pacer = Pacer(settings.status_per_minute / settings.time_scale)
        self.queue = PollQueue(self._poll, policy, time_scale=settings.time_scale,
                               concurrency=settings.status_concurrency, admit=self.pacer.acquire)
        self.on_finished: Callable[[Tracked], None] = lambda item: None
        self.status_calls = 0
        self.callbacks = 0  # jobs a callback woke (each time a status check was due because of one)
        self._by_task: dict[str, Tracked] = {}
        self._progress: dict[str, float] = {}  # percent done of the tasks rendering that said
        self._sent_at: dict[str, float] = {}  # when the status request under way for a task was sent
        self._recorded: dict[str, str] = {}  # the service's word for a task this run last wrote to the ledger
        self._shown_at = 0.0

    async def run(self) -> None:
        """Poll until every job followed has ended and :meth:`close` was called."""
        await self.queue.run()

    def close(self) -> None:
        """No more jobs will be followed."""
        self.queue.close()

    def follow(self, job: Job, task_id: str, sent_at: float) -> None:
        """A job this run just submitted (sent at monotonic ``sent_at``); it holds an in-flight slot."""
        item = self._tracked(job, task_id, time.monotonic() - sent_at, resumed=False)
        item.holds_slot = True
        self.queue.add(item)

    async def resume(self, planned: PlannedJob) -> None:
        """A job an earlier run left in flight: tracked again (a finished one straight to its download)."""
        run, rec = self._run, planned.record
        assert rec is not None and rec.task_id is not None
        downloadable = rec.state is JobState.FINISHED and bool(rec.file_url)
        problem = task_id_problem(rec.task_id, run.client.secrets)
        shown = one_line(service_text(rec.task_id, run.client.secrets, TASK_ID_SHOWN))
        if problem is not None and not downloadable:
            # An older version stored an id that cannot be asked about (nor put into a URL):
            # the row is left as it is (the task may exist; it is never resubmitted on its
            # own) and the rest of the run goes on.
            await run.ledger.note(run.campaign, rec.key, "not_tracked", {"error": f"unusable task id: {problem}"})
            run.progress.job(planned.label, "not tracked",
                             f"its task id cannot be used ({problem}): {shown}; check the APIDot dashboard")
            return
        item = self._tracked(planned.priced.job, rec.task_id, seconds_since(rec.submitted_at), resumed=True)
        item.holds_slot = _try_acquire(run.slots)
        run.progress.job(planned.label, "tracking", shown)
        if downloadable:
            item.file_url = rec.file_url
            item.ended = True  # straight to the download; no polls
            self.on_finished(item)
        else:
            self.queue.add(item)

    def _tracked(self, job: Job, task_id: str, age: float, *, resumed: bool) -> Tracked:
        now = time.monotonic()
        started = now - age
        settings = self._run.settings
        # A poll interval of grace: the task was created a little after the submit was sent,
        # and one that ends just inside run.timeout must be seen finished, not timed out.
        window = settings.real(settings.timeout + settings.poll_interval)
        deadline = now + window if resumed else started + window
        data = job.request["input"]
        bucket = Bucket(job.model, str(data.get("resolution")), int(data.get("duration", 0)))
        item = Tracked(job=job, task_id=task_id, bucket=bucket, started=started, deadline=deadline)
        self._by_task[task_id] = item
        return item

    def on_webhook(self, task_id: str) -> None:
        """A callback said ``task_id`` ended: check its status now, not at its next poll."""
        item = self._by_task.get(task_id)
        if item is None or item.ended or item.seen.hinted:
            return  # (hinted: a duplicate of a callback whose status check is queued or under way)
        self.callbacks += 1
        item.seen = replace(item.seen, hinted=True)
        if item.polling:
            item.recheck = True  # the answer under way may predate the end: ask again after it
        else:
            self.queue.reschedule(item, soon=True)

    def release(self, item: Tracked) -> None:
        """The job has ended (or cannot be followed further): its in-flight slot is free."""
        item.ended = True
        self._forget_progress(item)
        if item.holds_slot:
            item.holds_slot = False
            self._run.slots.release()

    async def refresh_url(self, item: Tracked) -> str | None:
        """Ask for the status again for a fresh file URL (the last one expired); None when none came."""
        status = await self.status(item)
        item.file_url = status.file_urls[0] if status and status.file_urls else None
        if item.file_url is not None:
            await self._run.ledger.finished(self._run.campaign, item.job.key, item.file_url, source="refresh")
        return item.file_url

    # --- one status check ---------------------------------------------------------------------

    async def _poll(self, item: Tracked) -> None:
        item.recheck = False
        before = item.seen  # as it was when this check started (hinted: a callback asked for it)
        status = await self.status(item, paid=True)
        if item.ended:
            return  # ended meanwhile (Ctrl-C twice, the account stopped): nothing more to do
        now = time.monotonic()
        # What the answer says held somewhere between the request and the answer: the middle.
        said_at = self.queue.age(item, (self._sent_at.pop(item.task_id, now) + now) / 2)
        if status is not None and status.finished:
            await self._finished(item, status, said_at, before)
            return
        if status is not None and status.failed:
            self.queue.policy.observe(before, finished_at_age=said_at)
            await self._end(item, "failed", status.error_message or "the service reported the task failed")
            # what the service says it gave back is not spent (run/refunds.py)
            await record_refund(self._run.ledger, self._run.campaign, item.job.key, status)
            return
        if status is not None:
            if self._recorded.get(item.task_id) != status.status:  # the same word again: nothing to write
                await self._run.ledger.status_seen(self._run.campaign, item.job.key, status.status)
                self._recorded[item.task_id] = status.status
            self._show_progress(item, status)
            item.seen = item.seen.answered(said_at, status.status, status.progress)
            item.unanswered = 0
        else:
            item.unanswered += 1
        if self._run.stops.account_error is not None and status is None:
            self.release(item)  # cannot ask any more: the task id stays for a later run
        elif now >= item.deadline:
            await self._end(item, "timed_out", f"still {status.status if status else 'unanswered'} after "
                                               f"{self._run.settings.timeout:g} s; a later run resumes tracking it")
        elif status is None:  # the service did not answer usably (after retries): back off
            self.queue.reschedule(item, after=min(UNANSWERED_MAX_GAP, max(
                UNANSWERED_GAP, 2 * self._run.settings.poll_interval) * 2.0 ** (item.unanswered - 1)))
        elif item.recheck:
            item.seen = replace(item.seen, hinted=True)
            self.queue.reschedule(item, soon=True)
        elif before.hinted:  # a callback said it ended, the status does not (yet): once more, shortly
            self.queue.reschedule(item, after=max(HINT_RECHECK, 2 * self._run.settings.poll_interval))
        else:
            self.queue.reschedule(item)

    async def _finished(self, item: Tracked, status: TaskStatus, age: float, before: Seen) -> None:
        policy = self.queue.policy
        first_learn = not policy.learned(item.bucket)
        policy.observe(before, finished_at_age=age)
        if first_learn and policy.learned(item.bucket):
            self.queue.learned()
        item.file_url = status.file_urls[0] if status.file_urls else None
        item.ended = True  # no more polls (a late webhook must not start a second download)
        self._forget_progress(item)
        await self._run.ledger.finished(self._run.campaign, item.job.key, item.file_url)
        self.on_finished(item)  # downloaded in its own task: a status slot is not held for a whole file

    async def _end(self, item: Tracked, how: str, message: str) -> None:
        item.ended = True
        run = self._run
        if how == "failed":
            await run.ledger.failed(run.campaign, item.job.key, "task_failed", message, api_status="failed")
        else:
            await run.ledger.timed_out(run.campaign, item.job.key, message)
        run.progress.job(item.job.label, how, message)
        self.release(item)

    def _show_progress(self, item: Tracked, status: TaskStatus) -> None:
        """Keep the task's ``progress`` for the live display, told at most every PROGRESS_EVERY."""
        if status.progress is None:
            return
        self._progress[item.task_id] = float(status.progress)
        now = time.monotonic()
        if now - self._shown_at >= PROGRESS_EVERY:
            self._shown_at = now
            values = self._progress.values()
            self._run.progress.rendering(len(values), sum(values) / len(values))

    def _forget_progress(self, item: Tracked) -> None:
        """The task has ended: its progress no longer counts; the last one to go clears the display."""
        if self._progress.pop(item.task_id, None) is not None and not self._progress:
            self._run.progress.rendering(0, 0.0)

    async def status(self, item: Tracked, *, paid: bool = False) -> TaskStatus | None:
        """The job's status, with retries; None when no usable answer came (the reason is in the ledger).

        ``paid``: the first attempt's turn in the pacer was already taken (by the schedule).
        """
        run = self._run
        if task_id_problem(item.task_id, run.client.secrets) is not None:
            return None  # an older version's unusable id (see resume): never put into a URL
        hook = Backoff(run.settings, (RateLimited, TransientError, InvalidRequest))
        turns = [paid]

        async def ask() -> TaskStatus:
            prepaid, turns[0] = turns[0], False
            return await self._ask(item.task_id, prepaid)

        try:
            return await retrying(ask, on=hook, attempts=run.settings.status_attempts)
        except AccountError as exc:
            run.stops.account(exc)
        except ApiError as exc:
            await run.ledger.note(run.campaign, item.job.key, "status_error", {"error": exc.message})
        return None

    async def _ask(self, task_id: str, prepaid: bool) -> TaskStatus:
        if not prepaid:
            await self.pacer.acquire()
        self.status_calls += 1
        sent = self._sent_at[task_id] = time.monotonic()
        try:
            status = await self._run.client.status(task_id)
        except RateLimited as exc:
            self.pacer.slow_down(capped(exc.retry_after, self._run.settings.retry_wait_max), sent)
            raise
        self.pacer.succeeded(sent)  # counted by when it was sent, as the server's window counts it
        return status


def _try_acquire(semaphore: anyio.Semaphore) -> bool:
    try:
        semaphore.acquire_nowait()
    except anyio.WouldBlock:
        return False
    return True
