"""Following every job that has a task id: when to ask, asking, and what each answer means.

:class:`Tracker` takes a job as soon as its task id is committed (or at start-up, for
tasks an earlier run left in flight), asks for its status when the poll policy says
(:mod:`.polling`), retries a status call that failed, records what it learns in the
ledger, and lets go of the job's in-flight slot when it ends: finished (then
downloaded, :mod:`.downloads`), failed, timed out, or given up. A webhook event only
moves a job's next status check to now. This module is the only code that changes a
:class:`Tracked`.

:class:`PollQueue` is the schedule: one heap of due status checks instead of a
sleeping task per job. When a bucket learns its first render time, every job of the
run still waiting for its first poll is re-aimed at once, so the first finished job
teaches the rest.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.abc

from ..errors import AccountError, ApiError, InvalidRequest, RateLimited, TransientError
from ..expand import Job
from ..ledger import JobState
from ..plan import PlannedJob
from ..safetext import one_line, service_text
from ..times import seconds_since
from .answers import TaskStatus
from .client import MAX_TASK_ID, task_id_problem
from .context import RunContext
from .polling import Bucket, PollPolicy
from .ratelimit import Pacer
from .retry import Backoff, capped, retrying

__all__ = ["PollQueue", "Tracked", "Tracker"]

# How much of a task id from the ledger is shown: an older version may have stored any text.
TASK_ID_SHOWN = MAX_TASK_ID


@dataclass(eq=False)
class Tracked:
    """A job with a task id, as the tracker follows it (mutable; changed only in this module)."""

    job: Job
    task_id: str
    bucket: Bucket
    started: float            # monotonic time the task was created (approximately)
    deadline: float           # monotonic time after which it is timed_out
    holds_slot: bool = False  # counts against max_in_flight
    polls: int = 0
    late_polls: int = 0       # polls at or past the aim that found it still rendering
    last_age: float | None = None
    due: float = 0.0
    file_url: str | None = None
    aimed_at: float | None = None  # the learned render time its aimed poll went for
    polling: bool = False          # a status call for it is under way
    ended: bool = False            # finished, failed, timed out or given up: no more polls


class PollQueue:
    """Schedules status checks; ``time_scale`` turns service seconds into real ones."""

    def __init__(self, poll: Callable[[Tracked], Awaitable[None]], policy: PollPolicy, *,
                 time_scale: float = 1.0, concurrency: int = 32) -> None:
        self._poll = poll
        self.policy = policy
        self.scale = time_scale
        self._heap: list[tuple[float, int, Tracked]] = []
        self._seq = itertools.count()
        self._wake = anyio.Event()
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._active = 0
        self._producers_done = False
        self._waiting_aim: set[Tracked] = set()

    def age(self, item: Tracked, now: float | None = None) -> float:
        """Service seconds since the task was created."""
        return ((time.monotonic() if now is None else now) - item.started) / self.scale

    def add(self, item: Tracked) -> None:
        """Start following a job: its first poll is aimed at its expected render time."""
        self.reschedule(item)

    def reschedule(self, item: Tracked, *, soon: bool = False) -> None:
        """Queue the job's next poll (``soon``: right away, e.g. after a webhook)."""
        if soon:
            if item.polling:
                return  # the answer is on its way anyway
            due = time.monotonic()
        else:
            age = self.policy.next_poll(item.bucket, item.late_polls, item.last_age)
            due = item.started + age * self.scale
            if item.late_polls == 0 and self.policy.learned(item.bucket):
                item.aimed_at = self.policy.aim(item.bucket)
        item.due = min(max(due, time.monotonic()), max(item.deadline, time.monotonic()))
        if item.late_polls == 0:
            self._waiting_aim.add(item)
        heapq.heappush(self._heap, (item.due, next(self._seq), item))
        self._wake.set()

    def learned(self) -> None:
        """Render times changed a lot (a first observation): re-aim jobs not yet polled at their aim."""
        for item in list(self._waiting_aim):
            if item.ended or item.late_polls:
                self._waiting_aim.discard(item)
            elif not item.polling:
                self.reschedule(item)

    def close(self) -> None:
        """No more jobs will be added: :meth:`run` returns once the heap drains."""
        self._producers_done = True
        self._wake.set()

    async def run(self) -> None:
        """Pop due polls until every job is finished and no more can come."""
        async with anyio.create_task_group() as polls:
            while not (self._producers_done and not self._heap and self._active == 0):
                self._wake = anyio.Event()
                self._start_due(polls)
                if self._heap:
                    with anyio.move_on_after(max(0.0, self._heap[0][0] - time.monotonic())):
                        await self._wake.wait()
                elif not (self._producers_done and self._active == 0):
                    await self._wake.wait()

    def _start_due(self, polls: anyio.abc.TaskGroup) -> None:
        now = time.monotonic()
        while self._heap and self._heap[0][0] <= now:
            due, _, item = heapq.heappop(self._heap)
            if due != item.due or item.polling or item.ended:
                # Superseded by a later reschedule, or a twin entry (re-aimed to the same
                # instant): one status call per job at a time, or a finished job would be
                # downloaded twice at once.
                continue
            self._active += 1
            item.polling = True  # from now: a webhook arriving meanwhile must not queue a twin
            polls.start_soon(self._one, item)

    async def _one(self, item: Tracked) -> None:
        try:
            async with self._limiter:
                try:
                    if not item.ended:
                        await self._poll(item)
                finally:
                    item.polling = False
        finally:
            self._active -= 1
            self._wake.set()


class Tracker:
    """Every job with a task id, from its task id to its end. ``on_finished`` downloads a finished one."""

    def __init__(self, run: RunContext, policy: PollPolicy) -> None:
        self._run = run
        settings = run.settings
        self.pacer = Pacer(settings.status_per_minute / settings.time_scale)
        self.queue = PollQueue(self._poll, policy, time_scale=settings.time_scale,
                               concurrency=settings.status_concurrency)
        self.on_finished: Callable[[Tracked], None] = lambda item: None
        self.status_calls = 0
        self._by_task: dict[str, Tracked] = {}

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
        window = self._run.settings.real(self._run.settings.timeout)
        deadline = now + window if resumed else started + window
        data = job.request["input"]
        bucket = Bucket(job.model, str(data.get("resolution")), int(data.get("duration", 0)))
        item = Tracked(job=job, task_id=task_id, bucket=bucket, started=started, deadline=deadline)
        self._by_task[task_id] = item
        return item

    def on_webhook(self, task_id: str) -> None:
        """A callback event arrived for ``task_id``: check its status now, not at its next poll."""
        item = self._by_task.get(task_id)
        if item is not None and not item.ended:
            self.queue.reschedule(item, soon=True)

    def release(self, item: Tracked) -> None:
        """The job has ended (or cannot be followed further): its in-flight slot is free."""
        item.ended = True
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
        status = await self.status(item)
        if item.ended:
            return  # ended meanwhile (Ctrl-C twice, the account stopped): nothing more to do
        now = time.monotonic()
        age = self.queue.age(item, now)
        if status is not None and status.finished:
            await self._finished(item, status, age)
            return
        if status is not None and status.failed:
            await self._end(item, "failed", status.error_message or "the service reported the task failed")
            return
        if status is not None:
            await self._run.ledger.status_seen(self._run.campaign, item.job.key, status.status)
        item.polls += 1
        item.last_age = age
        if item.aimed_at is not None and age >= item.aimed_at:
            item.late_polls += 1
        if self._run.stops.account_error is not None and status is None:
            self.release(item)  # cannot ask any more: the task id stays for a later run
        elif now >= item.deadline:
            await self._end(item, "timed_out", f"still {status.status if status else 'unanswered'} after "
                                               f"{self._run.settings.timeout:g} s; a later run resumes tracking it")
        else:
            self.queue.reschedule(item)

    async def _finished(self, item: Tracked, status: TaskStatus, age: float) -> None:
        policy = self.queue.policy
        first_learn = not policy.learned(item.bucket)
        policy.observe(item.bucket, finished_at_age=age, late_polls=item.late_polls, aimed_at=item.aimed_at)
        if first_learn:
            self.queue.learned()
        item.file_url = status.file_urls[0] if status.file_urls else None
        item.ended = True  # no more polls (a late webhook must not start a second download)
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

    async def status(self, item: Tracked) -> TaskStatus | None:
        """The job's status, with retries; None when no usable answer came (the reason is in the ledger)."""
        run = self._run
        if task_id_problem(item.task_id, run.client.secrets) is not None:
            return None  # an older version's unusable id (see resume): never put into a URL
        hook = Backoff(run.settings, (RateLimited, TransientError, InvalidRequest))
        try:
            return await retrying(lambda: self._ask(item.task_id), on=hook, attempts=run.settings.status_attempts)
        except AccountError as exc:
            run.stops.account(exc)
        except ApiError as exc:
            await run.ledger.note(run.campaign, item.job.key, "status_error", {"error": exc.message})
        return None

    async def _ask(self, task_id: str) -> TaskStatus:
        await self.pacer.acquire()
        self.status_calls += 1
        try:
            status = await self._run.client.status(task_id)
        except RateLimited as exc:
            self.pacer.slow_down(capped(exc.retry_after, self._run.settings.retry_wait_max))
            raise
        self.pacer.succeeded()
        return status


def _try_acquire(semaphore: anyio.Semaphore) -> bool:
    try:
        semaphore.acquire_nowait()
    except anyio.WouldBlock:
        return False
    return True
