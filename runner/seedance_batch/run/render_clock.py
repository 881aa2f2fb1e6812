"""The poll policy ``render-clock``: learned render times, aimed first polls (no use of ``progress``).

A job's first poll is aimed near its expected render time; the expectation for
each (model, resolution, duration) is learned from the jobs this run sees
finish, starting from a prior. The aim is a running quantile: a first poll that
finds the job done pulls the aim a little earlier next time, one that finds it
still rendering pushes it later four times as much, so most jobs are caught by
their first poll and the aim stays just past the render time.
After a miss the job is asked again soon, then less and less often (backoff with
jitter). Before anything in a bucket has finished, polls start early and widen,
so the first finished job teaches the rest quickly.

The default before ``progress-clock``; kept for services whose status carries no
``progress`` and for comparison (bench/run_throughput.py ``--policy render-clock``):
with render times varying by +/-50% it needs 5.6 to 6.8 status calls per job.
"""

from __future__ import annotations

import random

from .polling import Bucket, Next, Prior, Seen

__all__ = ["RenderClock"]

STEP_DOWN = 0.005   # a hit moves the aim 0.5% earlier
STEP_UP = 0.015     # a miss moves it 1.5% later: the aim settles near the 75th percentile
FIRST_GUESS = 0.3   # with nothing learned yet, first ask at 30% of the prior...
WIDEN = 1.5         # ...and widen the gaps by half each time
FOLLOW_UP = 0.006   # after a miss, ask again after 0.6% of the aim, then back off
MAX_GAP = 60.0      # never wait longer than this between two polls of one job


class RenderClock:
    """Learned render times per bucket and the poll schedule they imply.

    ``floor`` is the shortest gap between two polls of one job (``run.poll_interval``);
    ``prior`` the render time expected for a bucket before anything has finished.
    """

    def __init__(self, *, prior: Prior, floor: float = 1.0, rng: random.Random | None = None) -> None:
        self.floor = floor
        self._prior = prior
        self._aim: dict[Bucket, float] = {}
        # observed / prior over every bucket: a new bucket starts from what others taught
        self._ratio: float | None = None
        self._rng = rng or random.Random()

    def learned(self, bucket: Bucket) -> bool:
        """A job of ``bucket`` has been seen finished."""
        return bucket in self._aim

    def aim(self, bucket: Bucket) -> float:
        """Age at which the first poll of a job in ``bucket`` should land."""
        if bucket in self._aim:
            return self._aim[bucket]
        if self._ratio is not None:
            return self._prior(bucket) * self._ratio
        return self._prior(bucket) * FIRST_GUESS

    def exploring(self, bucket: Bucket) -> bool:
        """Nothing finished yet anywhere: polls start early and widen."""
        return bucket not in self._aim and self._ratio is None

    def next_poll(self, seen: Seen) -> Next:
        """A job's next poll; its aim is the learned render time while none of its polls passed it."""
        bucket, last_age = seen.bucket, seen.last_age
        aim = self.aim(bucket)
        aimed = aim if seen.late_polls == 0 and self.learned(bucket) else None
        if last_age is None:
            return Next(aim, aimed)
        if self.exploring(bucket):
            gap = max(self.floor, last_age * (WIDEN - 1.0))
        elif last_age < aim:  # polled while exploring; now there is something to aim at
            return Next(max(aim, last_age + self.floor), aimed)
        else:  # missed: ask again soon, then less and less often
            gap = max(self.floor, FOLLOW_UP * aim) * WIDEN ** max(0, seen.late_polls - 1)
        gap = min(MAX_GAP, gap) * self._rng.uniform(0.9, 1.1)
        return Next(last_age + max(self.floor, gap), aimed)

    def chance_finished(self, seen: Seen, age: float) -> float:
        """Rising to a half at the aim, and on past it with the polls that missed."""
        aim = max(self.floor, self.aim(seen.bucket))
        if age < aim:
            return 0.5 * age / aim
        return 1.0 - 0.5 / (1 + seen.late_polls)

    def observe(self, seen: Seen, *, finished_at_age: float) -> None:
        """A job was seen finished at ``finished_at_age``, after ``seen.late_polls`` misses at or past its aim.

        ``seen.aimed``: the learned render time its aimed poll went for (None while
        exploring). Steps are taken from that value, not from the current aim, so the
        dozens of jobs aimed alike (all in flight together) move the aim one step, not
        one step each.
        """
        bucket, late_polls, aimed_at = seen.bucket, seen.late_polls, seen.aimed
        if bucket not in self._aim:
            # The first finish seen: start from the late end (every job caught by its
            # aimed poll) and let hits walk it down.
            self._aim[bucket] = finished_at_age
        elif aimed_at is None:
            return
        elif late_polls == 0:  # caught by its aimed poll: aim a little earlier
            self._aim[bucket] = min(self._aim[bucket], aimed_at * (1.0 - STEP_DOWN))
        else:  # still rendering at the aim: aim later (by a step, not to the age seen: a slow
            # service inflates ages, and one stall must not drag the aim up for good)
            self._aim[bucket] = max(self._aim[bucket], aimed_at * (1.0 + STEP_UP))
        ratio = self._aim[bucket] / self._prior(bucket)
        self._ratio = ratio if self._ratio is None else 0.8 * self._ratio + 0.2 * ratio
