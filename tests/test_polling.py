"""The poll policies as arithmetic: where each puts a job's polls, what it learns, and what that costs.

A policy is pure (no I/O, no clock), so it is driven here by a small model of the service:
tasks with a queue wait and a render time, whose status at an age is a pure function
(``not_started`` / ``running`` with floor(100 x done) / ``finished``, as the simulator
answers). The figures asserted are the issue's targets, on that model; the same targets on
the real simulator over loopback are bench/run_throughput.py's (see the README).
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
import time
from dataclasses import dataclass, replace

import anyio
import pytest

from engine_support import make_jobs
from seedance_batch.models import load_catalog
from seedance_batch.run.polling import Bucket, Next, PollPolicy, Seen, catalog_prior, make_policy
from seedance_batch.run.progress_clock import LATE_BACKOFF, ProgressClock, Range, end_from_one, end_from_rate
from seedance_batch.run.safety_net import PRIOR_FACTOR, SLACK, SafetyNet
from seedance_batch.run.schedule import PollQueue, Tracked

BUCKET = Bucket("seedance-2-fast", "480p", 4)
prior = catalog_prior(load_catalog())


@dataclass(frozen=True)
class Task:
    """A task of the model: waits ``queue`` seconds, then renders for ``render``."""

    queue: float
    render: float
    stuck: bool = False

    @property
    def ends(self) -> float:
        return math.inf if self.stuck else self.queue + self.render

    def status(self, age: float) -> tuple[str, float | None]:
        if age < self.queue:
            return "not_started", 0
        if age >= self.ends:
            return "finished", 100
        return "running", max(1, min(99, int(100 * (age - self.queue) / self.render)))


def follow(policy: PollPolicy, task: Task, *, limit: int = 200) -> tuple[int, float]:
    """Poll ``task`` as the tracker would: (polls until seen finished, lag in seconds)."""
    seen = Seen(BUCKET)
    for polls in range(1, limit + 1):
        planned = policy.next_poll(seen)
        seen = replace(seen, aimed=planned.aimed if planned.aimed is not None else seen.aimed, planned=planned.age)
        status, progress = task.status(planned.age)
        if status == "finished":
            policy.observe(seen, finished_at_age=planned.age)
            return polls, planned.age - task.ends
        seen = seen.answered(planned.age, status, progress)
    raise AssertionError(f"{task} not seen finished in {limit} polls")


def campaign(policy: PollPolicy, tasks: list[Task]) -> tuple[float, float, float]:
    """Mean polls, mean lag, and mean lag as a share of the median render time (queue included)."""
    polls, lags = zip(*(follow(policy, task) for task in tasks), strict=True)
    median = statistics.median(task.ends for task in tasks)
    return statistics.fmean(polls), statistics.fmean(lags), statistics.fmean(lags) / median


def uniform_jitter(count: int, seed: int = 1) -> list[Task]:
    rng = random.Random(seed)
    return [Task(0.0, 60 * rng.uniform(0.5, 1.5)) for _ in range(count)]


def heavy_queue(count: int, seed: int = 2) -> list[Task]:
    """Median 10 s, p95 3 minutes (lognormal), as the issue's heavy-tailed queue."""
    rng = random.Random(seed)
    sigma = math.log(18) / 1.6449
    return [Task(rng.lognormvariate(math.log(10), sigma), 60.0) for _ in range(count)]


# --- the arithmetic of an end ---------------------------------------------------------------


def test_two_answers_pin_the_end_allowing_for_whole_percents() -> None:
    ends = end_from_rate((10.0, 20.0), (30.0, 60.0))  # 2 points a second: ends at 50
    assert ends is not None and ends.earliest < 50.0 < ends.latest and ends.width < 4.0
    assert end_from_rate((10.0, 20.0), (12.0, 20.0)) is not None  # rounding: it may have moved a little
    assert end_from_rate((10.0, 20.0), (12.0, 17.0)) is None  # went back: no rate at all


def test_one_answer_pins_the_end_when_renders_or_starts_are_known() -> None:
    # started at 0 (the queue is known to be empty), 50% at 30 s: ends at about 60
    by_start = end_from_one((30.0, 50.0), None, (0.0, 0.0))
    assert by_start.earliest == pytest.approx(58.8, abs=0.1) and by_start.latest == pytest.approx(61.2, abs=0.1)
    # started anywhere in the first 30 s, renders take 60: ends at about 60 too
    by_render = end_from_one((30.0, 50.0), (59.0, 61.0), (0.0, 30.0))
    assert 58.0 < by_render.earliest < 60.0 < by_render.latest < 62.0
    # nothing known but the answer itself: anything up to "it only just started"
    unknown = end_from_one((30.0, 50.0), None, (0.0, 30.0))
    assert unknown.earliest == 30.0 and unknown.latest == pytest.approx(61.2, abs=0.1)
    assert Range(1.0, 3.0).clip(Range(5.0, 6.0)) == Range(1.0, 3.0)  # no overlap: the first is kept


# --- progress-clock on the two services ------------------------------------------------


def test_render_times_varying_by_half_cost_under_three_and_a_half_polls_at_under_ten_percent_lag() -> None:
    polls, lag, share = campaign(ProgressClock(floor=0.25, prior=prior), uniform_jitter(2000))
    assert polls <= 3.5 and share <= 0.10, (polls, lag, share)
    assert polls <= 2.6 and lag <= 2.0  # what it does on this model: room to spare


def test_a_heavy_tailed_queue_costs_under_five_polls_at_under_ten_percent_lag() -> None:
    polls, lag, share = campaign(ProgressClock(floor=0.25, prior=prior), heavy_queue(2000))
    assert polls <= 5 and share <= 0.10, (polls, lag, share)
    assert polls <= 3.5 and lag <= 2.5


def test_renders_all_alike_cost_one_poll_each_at_the_latest_end() -> None:
    # The bench's default (no jitter): once the bucket's spread is known to be narrow, the first
    # poll lands at its latest end, not its earliest (which would find 98% and need a second).
    rng = random.Random(5)
    polls, lag, _ = campaign(ProgressClock(floor=0.25, prior=prior),
                             [Task(0.0, 60 * rng.uniform(0.99, 1.01)) for _ in range(2000)])
    assert polls <= 1.1 and lag <= 1.5, (polls, lag)


def test_render_clock_the_old_default_misses_the_lag_bound_with_the_same_spread() -> None:
    # Why progress-clock is the default: one task at a time (this model), render-clock's aim
    # settles near the 75th percentile of render times, so it polls little but every quicker
    # task waits for the aim: its lag is far past the 10% bound (on the bench, tasks in flight
    # together, it also costs 5.6 to 6.8 calls a job).
    from seedance_batch.run.render_clock import RenderClock

    polls, _, share = campaign(RenderClock(floor=0.25, prior=prior, rng=random.Random(3)), uniform_jitter(2000))
    assert share > 0.2, (polls, share)
    _, _, heavy = campaign(RenderClock(floor=0.25, prior=prior, rng=random.Random(3)), heavy_queue(2000))
    assert heavy > 0.5


def test_the_first_poll_does_not_drift_late_as_quick_tasks_stop_showing_their_rate() -> None:
    # The quick tasks are caught by their first poll and never show a rate: learning from the
    # others alone would move the first poll later every generation (it did, to 80 s here).
    clock = ProgressClock(floor=0.25, prior=prior)
    tasks = uniform_jitter(3000, seed=4)
    firsts = []
    for index, task in enumerate(tasks):
        follow(clock, task)
        if index % 500 == 499:
            firsts.append(clock.first_age(BUCKET))
    assert all(27.0 <= first <= 36.0 for first in firsts), firsts  # renders start at 30 s


def test_a_task_stuck_at_99_percent_is_asked_less_and_less_often() -> None:
    clock = ProgressClock(floor=0.25, prior=prior)
    for task in uniform_jitter(50):
        follow(clock, task)
    stuck = Task(0.0, 60.0, stuck=True)
    seen, ages = Seen(BUCKET), []
    for _ in range(14):
        planned = clock.next_poll(seen)
        ages.append(planned.age)
        seen = replace(seen, aimed=planned.aimed if planned.aimed is not None else seen.aimed)
        seen = seen.answered(planned.age, *stuck.status(planned.age))
    gaps = [later - earlier for earlier, later in itertools.pairwise(ages)]
    assert seen.late_polls >= LATE_BACKOFF
    assert gaps[-1] >= 60.0 and gaps[-1] <= 120.0  # backed off, within the longest gap
    assert sum(1 for gap in gaps if gap < 1.0) <= 4


def test_without_progress_a_task_is_asked_in_steps_of_its_expected_render() -> None:
    clock = ProgressClock(floor=0.5, prior=prior)
    seen = Seen(BUCKET).answered(10.0, "running", None)
    step = clock.next_poll(seen).age - 10.0
    assert step == pytest.approx(0.15 * prior(BUCKET))


def test_a_queued_task_is_asked_again_before_it_could_have_started_and_ended() -> None:
    clock = ProgressClock(floor=0.25, prior=prior)
    for task in uniform_jitter(100):
        follow(clock, task)
    shortest = clock.render_bounds(BUCKET)[0]
    seen = Seen(BUCKET).answered(40.0, "not_started", 0)
    assert clock.next_poll(seen).age - 40.0 == pytest.approx(0.8 * shortest)
    long_wait = Seen(BUCKET).answered(4000.0, "not_started", 0)
    assert clock.next_poll(long_wait).age - 4000.0 == pytest.approx(200.0)  # 5% of a very long wait


# --- the safety net, behind the callbacks ---------------------------------------------------------


def test_the_safety_net_polls_well_after_a_callback_was_due_and_learns_only_from_callbacks() -> None:
    net = SafetyNet(floor=0.25, prior=prior)
    assert net.next_poll(Seen(BUCKET)).age == pytest.approx(PRIOR_FACTOR * prior(BUCKET) + SLACK)
    for _ in range(20):  # found ended by a safety poll, late on purpose: teaches nothing
        net.observe(Seen(BUCKET), finished_at_age=500.0)
    assert not net.learned(BUCKET)
    for age in range(40, 60):  # woken by their callbacks
        net.observe(replace(Seen(BUCKET), hinted=True), finished_at_age=float(age))
    assert net.learned(BUCKET)
    first = net.next_poll(Seen(BUCKET)).age
    assert 2 * 59 <= first - SLACK <= 2 * 60
    # a safety poll that finds it rendering at 50%: the next one after the end it implies
    seen = Seen(BUCKET).answered(first, "running", 50)
    later = net.next_poll(seen)
    assert later.age > first + SLACK and net.chance_finished(seen, later.age) <= 0.5
    assert net.chance_finished(replace(seen, hinted=True), first) == 1.0


def test_every_policy_is_registered_and_answers_the_protocol() -> None:
    for name in ("progress-clock", "render-clock", "safety-net"):
        policy = make_policy(name, floor=0.5, prior=prior)
        first = policy.next_poll(Seen(BUCKET))
        assert isinstance(first, Next) and first.age > 0
        assert 0.0 <= policy.chance_finished(Seen(BUCKET), first.age) <= 1.0


# --- the schedule: scarce status calls go where they buy the most ------------------------------


class _Fixed:
    """A policy whose chances are given per job (its index, in ``seen.polls``): to see the order
    the schedule starts polls in."""

    def __init__(self, chances: dict[int, float]) -> None:
        self.chances = chances

    def learned(self, bucket: Bucket) -> bool:
        return False

    def next_poll(self, seen: Seen) -> Next:
        return Next(0.0)

    def chance_finished(self, seen: Seen, age: float) -> float:
        return self.chances[seen.polls]

    def observe(self, seen: Seen, *, finished_at_age: float) -> None:
        pass


@pytest.mark.parametrize("ready", [5, 40], ids=["few", "many"])
def test_when_status_calls_are_scarce_the_jobs_most_likely_finished_are_asked_first(ready: int) -> None:
    chances = {i: random.Random(i).random() for i in range(ready)}
    started: list[int] = []

    async def main() -> None:
        turns_send, turns = anyio.create_memory_object_stream[None](100)

        async def admit() -> None:  # one status call a turn, when the test gives one
            await turns.receive()

        async def poll(item: Tracked) -> None:
            started.append(item.seen.polls)
            item.ended = True

        policy = _Fixed(chances)
        queue = PollQueue(poll, policy, time_scale=1.0, concurrency=1, admit=admit)
        now = time.monotonic()
        jobs = make_jobs(ready)
        for index, job in enumerate(jobs):
            item = Tracked(job=job, task_id=f"task-{index}", bucket=BUCKET, started=now, deadline=now + 60)
            item.seen = Seen(BUCKET, polls=index)
            queue.add(item)
        queue.close()
        # Every poll is due before the schedule starts, so all wait for a turn together: each turn
        # (all given at once) goes to the best of those left, one at a time (concurrency 1).
        async with anyio.create_task_group() as group:
            group.start_soon(queue.run)
            with anyio.fail_after(20):
                for _ in range(ready):
                    await turns_send.send(None)

    anyio.run(main)
    expected = sorted(chances, key=chances.__getitem__, reverse=True)
    assert started == expected
