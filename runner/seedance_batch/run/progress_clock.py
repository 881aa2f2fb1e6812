"""The poll policy ``progress-clock`` (the default without callbacks): a task's end worked out from its ``progress``.

A task waits in ``not_started`` for Q seconds (heavy-tailed: APIDot re-dispatches
congested tasks), then renders for D seconds while its status reports ``progress``
(0-100). Progress that grows linearly pins the end: two answers while it renders give
the rate, hence the end (:func:`end_from_rate`); one answer gives it too when the run
has learned either how long renders of its bucket take (D varies little) or how long
its tasks wait (Q varies little) (:func:`end_from_one`). Each answer narrows the
range [earliest, latest] the task can end in, allowing for progress rounded to whole
percents; then:

* the range is narrow (:data:`NARROW` of a render): poll at its latest point, which
  finds the task ended, at most that width late;
* it is wide: poll at its earliest point. The task is most likely still rendering
  there, and that answer, far from the first, gives the rate: the next poll is exact.

So a task is asked about two or three times while it renders, whatever the spread of
render times (uniform jitter, heavy-tailed queues). The first poll lands at the
earliest a task of the bucket is seen to end (Q's 2nd percentile plus D's): almost every
task is rendering there, and the few done already are caught within a few seconds.
When the bucket's tasks all end alike (Q and D both vary by at most NARROW of a render),
it lands at their latest end instead: one status call a task, at most that range late.
While a task is queued it is asked every 0.8 x the shortest render seen (it cannot
start and end in between), less often after a very long wait. A task whose status
has no ``progress`` falls back to fixed steps of its expected render time; one found
still rendering at its predicted end three times (a task stuck at 99%) backs off.

Why the default: on bench/run_throughput.py at N = 2,000 it meets the issue's targets
(render times +/-50%: at most 3.5 status calls per job with a mean detection lag
under 10% of the median render; heavy-tailed queue, median 10 s and p95 3 minutes: at
most 5 calls per job) where ``render-clock``, which only learns how long jobs take,
needs 5.6 to 6.8 calls a job with +/-50%. Figures in the README.

Learning is per :class:`~.polling.Bucket`, from the jobs whose rate was measured over
a wide span of progress (their D, and their Q = when the rate says they started):
the 2nd to 98th percentiles of the last :data:`KEPT` are the bounds used. Before
anything is learned a job's first poll lands at 30% of the prior, and bounds are wide.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .polling import Bucket, Next, Prior, Seen

__all__ = ["ProgressClock", "Range", "end_from_one", "end_from_rate"]

KEPT = 256          # learned values kept per bucket (the newest)
MIN_LEARNED = 12    # values needed before a bucket's bounds are trusted
LOW, HIGH = 0.02, 0.98  # the percentiles taken as bounds
NARROW = 0.06       # a range at most this share of a render (or 2 floors) is polled at its end
MIN_SPAN = 15.0     # points of progress between two answers for their rate to be learned from
ROUNDING = 1.0      # progress is whole percents, rounded or cut: the true value is within 1 of it
FIRST_GUESS = 0.3   # before anything is learned, a first poll at 30% of the prior
QUEUED_STEP = 0.8   # while queued, ask every 0.8 x the shortest render seen...
QUEUED_GROWTH = 0.05  # ...or 5% of the wait so far, after a very long one
FALLBACK_STEP = 0.15  # without progress: ask every 15% of the expected render time
LATE_BACKOFF = 3    # polls found rendering at their predicted end before backing off
WIDEN = 2.0
MAX_GAP = 120.0     # never wait longer than this between two polls of a rendering task
MAX_QUEUED_GAP = 300.0


@dataclass(frozen=True, slots=True)
class Range:
    """When a task can end: between ``earliest`` and ``latest`` (ages)."""

    earliest: float
    latest: float

    @property
    def width(self) -> float:
        return self.latest - self.earliest

    def clip(self, other: Range | None) -> Range:
        """The overlap with ``other`` (self when they do not overlap: self is the surer one)."""
        if other is None:
            return self
        low, high = max(self.earliest, other.earliest), min(self.latest, other.latest)
        return Range(low, high) if low <= high else self


def end_from_rate(first: tuple[float, float], last: tuple[float, float]) -> Range | None:
    """The end implied by two progress answers ``(age, percent)``; None when progress did not move."""
    (t1, p1), (t2, p2) = first, last
    span = t2 - t1
    slow, fast = (p2 - p1 - 2 * ROUNDING) / span if span > 0 else 0.0, (p2 - p1 + 2 * ROUNDING) / span if span > 0 else 0.0
    if fast <= 0:
        return None
    earliest = t2 + max(0.0, 100.0 - p2 - ROUNDING) / fast
    latest = t2 + (100.0 - p2 + ROUNDING) / slow if slow > 0 else float("inf")
    return Range(earliest, latest)


def end_from_one(sample: tuple[float, float], render: tuple[float, float] | None,
                 start: tuple[float, float]) -> Range:
    """The end implied by one progress answer, renders taking ``render`` = (shortest, longest)
    (None: unknown) and the render having started between ``start`` = (earliest, latest)."""
    t, p = sample
    f_low, f_high = max(0.0, p - ROUNDING) / 100.0, min(100.0, p + ROUNDING) / 100.0
    s_low, s_high = start
    # from when it started: end = t + (t - s)(1/f - 1)
    latest = t + (t - s_low) * (1.0 / f_low - 1.0) if f_low > 0 else float("inf")
    earliest = t + max(0.0, t - s_high) * (1.0 / f_high - 1.0)
    by_start = Range(earliest, max(earliest, latest))
    if render is None:
        return by_start
    by_render = Range(t + (1.0 - f_high) * render[0], t + (1.0 - f_low) * render[1])
    return by_render.clip(by_start)


class _Values:
    """The newest values of one quantity, with their percentiles (sorted once per change:
    they are read at every poll scheduled and every priority worked out)."""

    def __init__(self) -> None:
        self._values: deque[float] = deque(maxlen=KEPT)
        self._ordered: list[float] | None = None

    def add(self, value: float) -> None:
        self._values.append(value)
        self._ordered = None

    @property
    def known(self) -> bool:
        return len(self._values) >= MIN_LEARNED

    def quantile(self, q: float) -> float:
        if self._ordered is None:
            self._ordered = sorted(self._values)
        ordered = self._ordered
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class _Learned:
    """One bucket: how long renders take (D), how long tasks wait first (Q), and when they end
    (Q + D of each task: its two errors, from one timing, largely cancel)."""

    render: _Values
    queue: _Values
    ends: _Values


class ProgressClock:
    """Polls aimed at each task's end as its progress tells it (see the module docstring)."""

    def __init__(self, *, floor: float = 1.0, prior: Prior) -> None:
        self.floor = floor
        self._prior = prior
        self._learned: dict[Bucket, _Learned] = {}

    def _of(self, bucket: Bucket) -> _Learned:
        if bucket not in self._learned:
            self._learned[bucket] = _Learned(_Values(), _Values(), _Values())
        return self._learned[bucket]

    # --- what is known of a bucket ------------------------------------------------------------

    def learned(self, bucket: Bucket) -> bool:
        return self._of(bucket).render.known

    def render_bounds(self, bucket: Bucket) -> tuple[float, float] | None:
        """(shortest, longest) render of the bucket, widened by 2%; None until learned."""
        render = self._of(bucket).render
        if not render.known:
            return None
        return render.quantile(LOW) * 0.98, render.quantile(HIGH) * 1.02

    def typical_render(self, bucket: Bucket) -> float:
        render = self._of(bucket).render
        return render.quantile(0.5) if render.known else self._prior(bucket)

    def _queue_bounds(self, bucket: Bucket) -> tuple[float, float] | None:
        queue = self._of(bucket).queue
        return (queue.quantile(LOW), queue.quantile(HIGH)) if queue.known else None

    def first_age(self, bucket: Bucket) -> float:
        """Where a first poll lands: the earliest a task of the bucket is seen to end, or, when
        its tasks all end alike (:meth:`alike_end`), the latest."""
        alike = self.alike_end(bucket)
        if alike is not None:
            return alike
        bounds, queue = self.render_bounds(bucket), self._queue_bounds(bucket)
        if bounds is None:
            return FIRST_GUESS * self._prior(bucket)
        return bounds[0] + (queue[0] if queue else 0.0)

    def alike_end(self, bucket: Bucket) -> float | None:
        """The age by which every task of ``bucket`` has ended, when they all end within a narrow
        range (their ends, queue wait plus render, spread by at most :data:`NARROW` of a render): a first poll there finds almost every task ended, one status call each,
        at most that range late. None when they spread wider (or nothing is learned yet)."""
        learned = self._of(bucket)
        if not (learned.render.known and learned.ends.known):
            return None
        earliest, latest = learned.ends.quantile(LOW), learned.ends.quantile(HIGH)
        if latest - earliest > max(2 * self.floor, NARROW * self.typical_render(bucket)):
            return None
        return latest

    def end_range(self, seen: Seen) -> Range | None:
        """When this task can end, from its progress answers; None when it gave none."""
        if not seen.samples:
            return None
        last = seen.samples[-1]
        start_low = seen.queued_until or 0.0
        start_high = seen.running_from if seen.running_from is not None else last[0]
        queue = self._queue_bounds(seen.bucket)
        hard = (start_low, min(start_high, last[0]))
        soft = (max(hard[0], queue[0]), min(hard[1], queue[1])) if queue else hard
        start = soft if soft[0] <= soft[1] else hard
        one = end_from_one(last, self.render_bounds(seen.bucket), start)
        if len(seen.samples) > 1:
            by_rate = end_from_rate(seen.samples[0], last)
            if by_rate is not None:
                one = by_rate.clip(one)
        floor = (seen.last_age or 0.0) + 1e-9
        return Range(max(floor, one.earliest), max(floor, one.latest))

    # --- the schedule ---------------------------------------------------------------------------

    def next_poll(self, seen: Seen) -> Next:
        bucket, last = seen.bucket, seen.last_age
        if last is None:
            return Next(self.first_age(bucket))
        if seen.late_polls >= LATE_BACKOFF:  # its end keeps not coming (a task stuck at 99%)
            gap = max(self.floor, FALLBACK_STEP * self.typical_render(bucket)) * WIDEN ** (seen.late_polls - LATE_BACKOFF)
            return Next(last + min(MAX_GAP, gap), last + min(MAX_GAP, gap))
        if seen.queued_until == last:  # still waiting for a renderer
            bounds = self.render_bounds(bucket)
            shortest = bounds[0] if bounds else 0.5 * self._prior(bucket)
            gap = max(self.floor, QUEUED_STEP * shortest, min(MAX_QUEUED_GAP, QUEUED_GROWTH * last))
            return Next(last + gap)
        ends = self.end_range(seen)
        if ends is None:  # rendering, no progress given: fixed steps of the expected render
            gap = max(self.floor, FALLBACK_STEP * self.typical_render(bucket))
            return Next(last + min(MAX_GAP, gap), last + gap)
        narrow = max(2 * self.floor, NARROW * self.typical_render(bucket))
        if ends.width <= narrow:
            return Next(max(last + self.floor, ends.latest), ends.latest)
        # Wide: at its earliest end, but far enough on for the rate to show (MIN_SPAN points of a
        # typical render), and no further than half-way to its latest.
        baseline = min(MAX_GAP, max(self.floor, MIN_SPAN / 100.0 * self.typical_render(bucket)))
        halfway = ends.earliest + ends.width / 2
        return Next(max(last + self.floor, ends.earliest, min(last + baseline, halfway)))

    def chance_finished(self, seen: Seen, age: float) -> float:
        if seen.hinted:
            return 1.0
        if seen.last_age is None:
            first = self.first_age(seen.bucket)
            return 0.05 if age < first else min(0.9, 0.05 + 0.5 * (age - first) / max(self.floor, first))
        if seen.queued_until == seen.last_age:
            return 0.02
        ends = self.end_range(seen)
        if ends is None or seen.late_polls:
            return 0.5 if seen.late_polls < LATE_BACKOFF else 0.1
        if age >= ends.latest:
            return 1.0
        return max(0.0, (age - ends.earliest) / max(ends.width, 1e-9))

    # --- learning -------------------------------------------------------------------------------

    def observe(self, seen: Seen, *, finished_at_age: float) -> None:
        """Learn from a task seen ended: its render time D, and its queue wait Q where they show.

        Which tasks show D is not random: a task caught by its first poll never showed its
        rate, and those are the quick ones. Learning from the others alone would push the
        shortest render seen, hence the first poll, later and later (and every quick task's
        lag with it); so a task caught by its first poll counts too, at the most it can
        have taken: by when its poll was planned (the poll itself may have come later, when
        status calls were scarce or the run busy: counting that delay would drift it too).
        """
        learned = self._of(seen.bucket)
        if not seen.samples:
            # (a first poll at the bucket's latest end, alike_end, caught it: nothing new to learn;
            # the tasks it finds still rendering show their rate, and widen the ends if they differ)
            if seen.last_age is None and learned.render.known and self.alike_end(seen.bucket) is None:
                queue = self._queue_bounds(seen.bucket)
                by = min(finished_at_age, seen.planned if seen.planned is not None else finished_at_age)
                learned.render.add(max(self.floor, by - (queue[0] if queue else 0.0)))
            return
        self.learn_rate(seen)

    def learn_rate(self, seen: Seen) -> None:
        """Learn D and Q from what the task's progress showed: a rate measured over a wide span,
        or one answer when the bucket's tasks all start alike (Q known to within a few percent)."""
        learned = self._of(seen.bucket)
        last_age, last = seen.samples[-1]
        first_age, first = seen.samples[0]
        if last - first >= MIN_SPAN and last_age > first_age:
            render = 100.0 * (last_age - first_age) / (last - first)
        else:
            queue = self._queue_bounds(seen.bucket)
            tight = queue is not None and queue[1] - queue[0] <= NARROW * self.typical_render(seen.bucket)
            if not tight or last < MIN_SPAN or queue is None:
                return
            render = (last_age - (queue[0] + queue[1]) / 2) / ((last + 0.5) / 100.0)
        learned.render.add(render)
        waited = max(0.0, last_age - (last + 0.5) / 100.0 * render)
        learned.queue.add(waited)
        learned.ends.add(waited + render)
