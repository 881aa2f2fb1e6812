"""When to ask for a task's status: learned render times, pure arithmetic, no I/O.

A job's first poll is aimed near its expected render time; the expectation for
each (model, resolution, duration) is learned from the jobs this run sees
finish, starting from a prior. The aim is a running quantile: a first poll that
finds the job done pulls the aim a little earlier next time, one that finds it
still rendering pushes it later four times as much, so most jobs are caught by
their first poll and the aim stays just past the render time.
After a miss the job is asked again soon, then less and less often (backoff with
jitter). Before anything in a bucket has finished, polls start early and widen,
so the first finished job teaches the rest quickly.

All durations here are *service seconds*; the engine multiplies them by the
run's time scale (1 for APIDot; small under ``--simulate``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Bucket", "RenderClock", "prior_seconds"]

# Assumption: APIDot publishes no render times. Plausible figures for Seedance 2
# (queue + base + seconds of video x resolution factor, faster model 0.6x);
# they only set the first guess, which the run then corrects.
QUEUE_SECONDS = 3.0
BASE_SECONDS = 20.0
PER_VIDEO_SECOND = 6.0
RESOLUTION_FACTOR = {"480p": 0.6, "720p": 1.0, "1080p": 2.0}
MODEL_FACTOR = {"seedance-2-fast": 0.6}

STEP_DOWN = 0.005   # a hit moves the aim 0.5% earlier
STEP_UP = 0.015     # a miss moves it 1.5% later: the aim settles near the 75th percentile
FIRST_GUESS = 0.3   # with nothing learned yet, first ask at 30% of the prior...
WIDEN = 1.5         # ...and widen the gaps by half each time
FOLLOW_UP = 0.006   # after a miss, ask again after 0.6% of the aim, then back off
MAX_GAP = 60.0      # never wait longer than this between two polls of one job


@dataclass(frozen=True, slots=True)
class Bucket:
    """Jobs expected to render alike."""

    model: str
    resolution: str
    duration: int


def prior_seconds(bucket: Bucket) -> float:
    """The render time expected before anything has been learned."""
    factor = RESOLUTION_FACTOR.get(bucket.resolution, 1.0) * MODEL_FACTOR.get(bucket.model, 1.0)
    return QUEUE_SECONDS + (BASE_SECONDS + PER_VIDEO_SECOND * bucket.duration) * factor


class RenderClock:
    """Learned render times per bucket and the poll schedule they imply.

    ``floor`` is the shortest gap between two polls of one job (``run.poll_interval``).
    """

    def __init__(self, *, floor: float = 1.0, rng: random.Random | None = None) -> None:
        self.floor = floor
        self._aim: dict[Bucket, float] = {}
        # observed / prior over every bucket: a new bucket starts from what others taught
        self._ratio: float | None = None
        self._rng = rng or random.Random()

    def learned(self, bucket: Bucket) -> bool:
        return bucket in self._aim

    def aim(self, bucket: Bucket) -> float:
        """Age at which the first poll of a job in ``bucket`` should land."""
        if bucket in self._aim:
            return self._aim[bucket]
        if self._ratio is not None:
            return prior_seconds(bucket) * self._ratio
        return prior_seconds(bucket) * FIRST_GUESS

    def exploring(self, bucket: Bucket) -> bool:
        """Nothing finished yet anywhere: polls start early and widen."""
        return bucket not in self._aim and self._ratio is None

    def next_poll(self, bucket: Bucket, late_polls: int, last_age: float | None) -> float:
        """Age for a job's next poll. ``late_polls``: polls at or past the aim that found it rendering."""
        aim = self.aim(bucket)
        if last_age is None:
            return aim
        if self.exploring(bucket):
            gap = max(self.floor, last_age * (WIDEN - 1.0))
        elif last_age < aim:  # polled while exploring; now there is something to aim at
            return max(aim, last_age + self.floor)
        else:  # missed: ask again soon, then less and less often
            gap = max(self.floor, FOLLOW_UP * aim) * WIDEN ** max(0, late_polls - 1)
        gap = min(MAX_GAP, gap) * self._rng.uniform(0.9, 1.1)
        return last_age + max(self.floor, gap)

    def observe(self, bucket: Bucket, *, finished_at_age: float, late_polls: int, aimed_at: float | None) -> None:
        """A job was seen finished at ``finished_at_age``, after ``late_polls`` misses at or past its aim.

        ``aimed_at``: the learned render time its aimed poll went for (None while
        exploring). Steps are taken from that value, not from the current aim, so the
        dozens of jobs aimed alike (all in flight together) move the aim one step, not
        one step each.
        """
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
        ratio = self._aim[bucket] / prior_seconds(bucket)
        self._ratio = ratio if self._ratio is None else 0.8 * self._ratio + 0.2 * ratio
