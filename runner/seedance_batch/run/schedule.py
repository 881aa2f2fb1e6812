"""The schedule of status checks: one heap of due polls, started in the order that buys the most.

:class:`PollQueue` holds one entry per job (a :class:`Tracked`) instead of a sleeping task
per job. A job's next poll is due when its policy says (:mod:`.polling`). A due poll waits
for two things: a free status slot (``status_concurrency`` calls in the air at most) and
its turn in the status pacer (``run.status_per_minute``, never exceeded). When both come,
the poll started is the due job *most likely finished* (:meth:`PollPolicy.chance_finished`:
a job a callback says ended, then one at its predicted end, before a queued one), not the
first to fall due: when status calls are scarcer than due polls, they are spent where a
late answer costs detection lag, and a poll that would only say "still queued" waits.

When a bucket learns its first render times, every job still waiting for its first poll
is re-aimed at once, so the first finished jobs teach the rest.

Only this module and :mod:`.tracking` change a :class:`Tracked`.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import anyio
import anyio.abc

from ..expand import Job
from .polling import Bucket, PollPolicy, Seen

__all__ = ["PollQueue", "Tracked"]

# Up to this many polls ready at once, the best is worked out afresh for each one started;
# beyond, from a ranking of them all kept this long (real seconds).
RANK_SMALL = 16
RANK_SECONDS = 0.1


@dataclass(eq=False)
class Tracked:
    """A job with a task id, as the tracker follows it (mutable; see the module docstring)."""

    job: Job
    task_id: str
    bucket: Bucket
    started: float            # monotonic time the task was created (approximately)
    deadline: float           # monotonic time after which it is timed_out
    holds_slot: bool = False  # counts against max_in_flight
    due: float = 0.0
    file_url: str | None = None
    polling: bool = False          # a status call for it is under way
    recheck: bool = False          # a callback came while that call was under way
    unanswered: int = 0            # status checks in a row that got no usable answer
    ended: bool = False            # finished, failed, timed out or given up: no more polls
    seen: Seen = field(init=False)  # what its answers said, for its policy

    def __post_init__(self) -> None:
        self.seen = Seen(self.bucket)


async def _at_once() -> None:
    """No pacing (tests of the schedule alone)."""


class PollQueue:
    """Schedules status checks; ``time_scale`` turns service seconds into real ones.

    ``admit``: awaited before each poll starts, for its turn (the status pacer).
    """

    def __init__(self, poll: Callable[[Tracked], Awaitable[None]], policy: PollPolicy, *,
                 time_scale: float = 1.0, concurrency: int = 32,
                 admit: Callable[[], Awaitable[None]] = _at_once) -> None:
        self._poll = poll
        self.policy = policy
        self.scale = time_scale
        self._admit = admit
        self._heap: list[tuple[float, int, Tracked]] = []
        self._ready: dict[Tracked, None] = {}  # due, waiting for a slot and a turn (insertion-ordered)
        self._seq = itertools.count()
        self._wake = anyio.Event()
        self._slots = anyio.Semaphore(concurrency)  # released by the poll task, not the one that took it
        self._active = 0
        self._producers_done = False
        self._waiting_first: set[Tracked] = set()
        self._ranked: list[Tracked] = []  # ready polls, best last (see _best)
        self._ranked_at = 0.0

    def age(self, item: Tracked, now: float | None = None) -> float:
        """Service seconds since the task was created."""
        return ((time.monotonic() if now is None else now) - item.started) / self.scale

    def add(self, item: Tracked) -> None:
        """Start following a job: its first poll lands where the policy aims it."""
        self.reschedule(item)

    def reschedule(self, item: Tracked, *, soon: bool = False, after: float | None = None) -> None:
        """Queue the job's next poll: where the policy says; ``soon``: now (a callback came);
        ``after``: this many service seconds from now."""
        now = time.monotonic()
        if soon:
            if item.polling:
                return  # the answer is on its way anyway
            due = now
        elif after is not None:
            due = now + after * self.scale
        else:
            planned = self.policy.next_poll(item.seen)
            due = item.started + planned.age * self.scale
            if planned.aimed is not None:
                item.seen = replace(item.seen, aimed=planned.aimed)
        item.due = min(max(due, now), max(item.deadline, now))
        item.seen = replace(item.seen, planned=self.age(item, item.due))
        if item.seen.last_age is None:
            self._waiting_first.add(item)
        heapq.heappush(self._heap, (item.due, next(self._seq), item))
        self._wake.set()

    def learned(self) -> None:
        """Render times changed a lot (first ones learned): re-aim jobs not yet polled."""
        for item in list(self._waiting_first):
            if item.ended or item.seen.last_age is not None:
                self._waiting_first.discard(item)
            elif not item.polling and not item.seen.hinted:
                self.reschedule(item)

    def close(self) -> None:
        """No more jobs will be added: :meth:`run` returns once every job has ended."""
        self._producers_done = True
        self._wake.set()

    @property
    def waiting(self) -> int:
        """Polls due and waiting for a slot or a turn (a sign status calls are scarce)."""
        return len(self._ready)

    async def run(self) -> None:
        """Start due polls until every job has ended and no more can come."""
        async with anyio.create_task_group() as polls:
            while not (self._producers_done and not self._heap and not self._ready and self._active == 0):
                self._wake = anyio.Event()
                self._collect()
                if self._any_ready(time.monotonic()):
                    await self._start_best(polls)
                    continue
                if self._heap:
                    with anyio.move_on_after(max(0.0, self._heap[0][0] - time.monotonic())):
                        await self._wake.wait()
                elif not (self._producers_done and self._active == 0):
                    await self._wake.wait()

    def _collect(self) -> None:
        """Move the polls now due from the heap to the ready set."""
        now = time.monotonic()
        while self._heap and self._heap[0][0] <= now:
            due, _, item = heapq.heappop(self._heap)
            if due != item.due or item.polling or item.ended:
                # Superseded by a later reschedule, or a twin entry (re-aimed to the same
                # instant): one status call per job at a time, or a finished job would be
                # downloaded twice at once.
                continue
            self._ready[item] = None

    async def _start_best(self, polls: anyio.abc.TaskGroup) -> None:
        """Wait for a slot and a turn, then start the ready poll most likely to find its job ended."""
        await self._slots.acquire()
        try:
            await self._admit()
        except BaseException:
            self._slots.release()
            raise
        self._collect()
        item = self._best()
        if item is None:
            self._slots.release()
            return
        self._active += 1
        item.polling = True  # from now: a callback arriving meanwhile must not queue a twin
        polls.start_soon(self._one, item)

    @staticmethod
    def _valid(item: Tracked, now: float) -> bool:
        """Still to be polled now: not ended meanwhile, nor re-aimed later (its heap entry brings it back)."""
        return not (item.ended or item.polling or item.due > now)

    def _any_ready(self, now: float) -> bool:
        for item in list(self._ready):
            if self._valid(item, now):
                return True  # (usually the first one looked at)
            del self._ready[item]
        return False

    def _priority(self, item: Tracked, now: float) -> tuple[float, float]:
        return self.policy.chance_finished(item.seen, self.age(item, now)), -item.due

    def _best(self) -> Tracked | None:
        """The ready poll most likely to find its job ended: worked out afresh among a few; among
        many (status calls scarce), taken from a ranking kept :data:`RANK_SECONDS`, so picking
        costs no scan of thousands per call."""
        now = time.monotonic()
        if len(self._ready) <= RANK_SMALL:
            valid = [item for item in self._ready if self._valid(item, now)]
            self._ready = {item: None for item in valid}
            best = max(valid, key=lambda i: self._priority(i, now)) if len(valid) > 1 else next(iter(valid), None)
        else:
            best = self._from_ranking(now)
        if best is not None:
            del self._ready[best]
        return best

    def _from_ranking(self, now: float) -> Tracked | None:
        for _ in range(2):  # a stale or used-up ranking is made again once
            if not self._ranked or now - self._ranked_at > RANK_SECONDS:
                self._ranked = sorted((i for i in self._ready if self._valid(i, now)),
                                      key=lambda i: self._priority(i, now))
                self._ranked_at = now
            while self._ranked:
                item = self._ranked.pop()  # the best is last
                if item in self._ready and self._valid(item, now):
                    return item
        return None

    async def _one(self, item: Tracked) -> None:
        try:
            try:
                if not item.ended:
                    await self._poll(item)
            finally:
                item.polling = False
                self._slots.release()
        finally:
            self._active -= 1
            self._wake.set()
