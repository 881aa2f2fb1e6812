"""The poll policy ``safety-net`` (the default with callbacks): rare polls behind the webhooks.

With ``run.callback_url`` set, a task's end arrives as a callback and its job is checked
at once (one status call to reconcile: events are hints). Polling is only the safety
net for callbacks that never come (APIDot does not retry them; a receiver can be down),
so it is rare: a task's first poll lands well after it should have ended and called
back (:data:`SLACK_FACTOR` x the latest end seen from callbacks, plus :data:`SLACK`;
before any callback, 3 x the prior), and later ones back off (x2, up to
:data:`MAX_GAP`). A safety poll that finds the task rendering with a ``progress``
places the next one after the end that progress implies (``progress-clock``'s reading),
plus the slack a callback may take, so a run whose every callback is lost still
finishes, later.

Learning: how long tasks take only from the jobs a callback woke (their end is known
to within the callback's delay); the jobs a safety poll found ended were found late
on purpose, and would drag the schedule later and later. What progress teaches
(render times, queue waits) is learned from every job, as ``progress-clock`` does.
"""

from __future__ import annotations

from collections import deque

from .polling import Bucket, Next, Prior, Seen
from .progress_clock import ProgressClock

__all__ = ["SafetyNet"]

SLACK = 30.0          # service seconds a callback may take beyond the end (a slow receiver, a delay)
SLACK_FACTOR = 2.0    # first safety poll at 2 x the latest end a callback showed...
PRIOR_FACTOR = 3.0    # ...or, before any callback, 3 x the prior
MAX_GAP = 600.0       # safety polls of one task at least every 10 minutes
KEPT = 256
MIN_LEARNED = 12
LATEST = 0.99         # "the latest end seen": this percentile of the callbacks' ages


class SafetyNet:
    """Polls that only catch what callbacks missed (see the module docstring)."""

    def __init__(self, *, floor: float = 1.0, prior: Prior) -> None:
        self.floor = floor
        self._prior = prior
        self._reader = ProgressClock(floor=floor, prior=prior)
        self._called_back: dict[Bucket, deque[float]] = {}

    def learned(self, bucket: Bucket) -> bool:
        return len(self._called_back.get(bucket, ())) >= MIN_LEARNED

    def latest_end(self, bucket: Bucket) -> float:
        """The age by which tasks of ``bucket`` have called back (service seconds)."""
        ages = self._called_back.get(bucket)
        if ages is None or len(ages) < MIN_LEARNED:
            return PRIOR_FACTOR * self._prior(bucket)
        ordered = sorted(ages)
        return SLACK_FACTOR * ordered[min(len(ordered) - 1, int(LATEST * len(ordered)))]

    def next_poll(self, seen: Seen) -> Next:
        first = self.latest_end(seen.bucket) + SLACK
        last = seen.last_age
        if last is None:
            return Next(first, first)
        ends = self._reader.end_range(seen) if seen.queued_until != last else None
        if ends is not None and seen.late_polls == 0:
            after = ends.latest + SLACK
            return Next(max(last + self.floor, after), after)
        gap = min(MAX_GAP, max(first, self.floor) * 2.0 ** seen.polls)
        return Next(last + gap, last + gap)

    def chance_finished(self, seen: Seen, age: float) -> float:
        if seen.hinted:
            return 1.0
        return 0.5 * self._reader.chance_finished(seen, age)

    def observe(self, seen: Seen, *, finished_at_age: float) -> None:
        if seen.samples:  # what progress showed (a safety poll finds ended tasks late on purpose)
            self._reader.learn_rate(seen)
        if seen.hinted:
            ages = self._called_back.setdefault(seen.bucket, deque(maxlen=KEPT))
            ages.append(finished_at_age)
