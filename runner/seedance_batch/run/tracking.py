"""The poll scheduler: one heap of due status checks instead of a sleeping task per job.

Jobs are added as soon as their task id is committed (or at start-up, for
tasks an earlier run left in flight). One loop pops the jobs whose next poll
is due and hands each to ``poll`` (the engine's status check), which calls
:meth:`Tracker.reschedule` when the job still renders. When a bucket learns its
first render time, every job of the run still waiting for its first poll is
re-aimed at once, so the first finished job teaches the rest.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from ..expand import Job
from .polling import Bucket, RenderClock

__all__ = ["Tracked", "Tracker"]


@dataclass(eq=False)
class Tracked:
    """A job with a task id, as the tracker follows it (mutable, engine-private)."""

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
    webhook_seen: bool = field(default=False)


class Tracker:
    """Schedules status checks; ``time_scale`` turns service seconds into real ones."""

    def __init__(self, poll: Callable[[Tracked], Awaitable[None]], clock: RenderClock, *,
                 time_scale: float = 1.0, concurrency: int = 32) -> None:
        self._poll = poll
        self.clock = clock
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
            age = self.clock.next_poll(item.bucket, item.late_polls, item.last_age)
            due = item.started + age * self.scale
            if item.late_polls == 0 and self.clock.learned(item.bucket):
                item.aimed_at = self.clock.aim(item.bucket)
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
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due, _, item = heapq.heappop(self._heap)
                    if due != item.due or item.polling or item.ended:
                        # Superseded by a later reschedule, or a twin entry (re-aimed to the
                        # same instant): one status call per job at a time, or a finished job
                        # would be downloaded twice at once.
                        continue
                    self._active += 1
                    item.polling = True  # from now: a webhook arriving meanwhile must not queue a twin
                    polls.start_soon(self._one, item)
                if self._heap:
                    with anyio.move_on_after(max(0.0, self._heap[0][0] - time.monotonic())):
                        await self._wake.wait()
                elif not (self._producers_done and self._active == 0):
                    await self._wake.wait()

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
