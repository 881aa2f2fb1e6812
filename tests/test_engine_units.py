"""Pure parts of the run: settings, pacing, the poll aim, safe output paths, backoff."""

from __future__ import annotations

import itertools
import random
import time
from decimal import Decimal
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from seedance_batch.errors import RateLimited, TransientError, UsageError
from seedance_batch.models import load_catalog
from seedance_batch.run.downloads import TargetCheck, safe_target
from seedance_batch.run.polling import POLL_POLICIES, Bucket, Next, Seen, catalog_prior, make_policy
from seedance_batch.run.ratelimit import SAFETY, Pacer
from seedance_batch.run.render_clock import FIRST_GUESS, STEP_DOWN, STEP_UP, RenderClock
from seedance_batch.run.retry import Backoff
from seedance_batch.run.settings import RunSettings

BUCKET = Bucket("seedance-2-fast", "480p", 4)
prior_seconds = catalog_prior(load_catalog())


def test_settings_from_manifest_then_flags() -> None:
    run = {"submits_per_minute": 20, "max_in_flight": 6, "confirm_above_usd": 5, "callback_url": None}
    settings = RunSettings.build(run, {"max_in_flight": 3, "timeout": None}, output_dir=Path("out"))
    assert (settings.submits_per_minute, settings.max_in_flight, settings.timeout) == (20, 3, 1800.0)
    assert settings.confirm_above_usd == Decimal("5") and settings.output_dir == Path("out")
    with pytest.raises(UsageError, match="max-in-flight must be 1 or more, got 0"):
        RunSettings.build({}, {"max_in_flight": 0})
    with pytest.raises(UsageError, match="submits-per-minute must be above 0"):
        RunSettings.build({"submits_per_minute": 0})


def test_pacer_never_admits_ahead_of_schedule() -> None:
    pacer = Pacer(6000)  # 100 a second
    times: list[float] = []

    async def go() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(21):
                tg.start_soon(one)

    async def one() -> None:
        await pacer.acquire()
        times.append(time.monotonic())

    anyio.run(go)
    times.sort()
    interval = SAFETY / 100
    assert all(times[k] - times[0] >= k * interval - 1e-4 for k in range(len(times)))
    # a late wake-up is made up only in part: no two admissions closer than 3/4 interval
    assert all(later - earlier >= 0.75 * interval - 1e-3 for earlier, later in itertools.pairwise(times))
    assert pacer.admitted == 21


def test_pacer_halves_once_per_429_episode_and_recovers_additively() -> None:
    now = [100.0]
    pacer = Pacer(600, clock=lambda: now[0])  # 10 a second
    pacer.slow_down(2.0)
    pacer.slow_down(2.0)  # another 429 from a request already in the air: same episode
    assert pacer.rate == pytest.approx(5.0) and pacer.decreases == 1
    assert pacer._next >= 102.0  # nobody before Retry-After
    now[0] = 110.0
    pacer.slow_down(None)  # a fresh episode
    assert pacer.rate == pytest.approx(2.5) and pacer.decreases == 2
    for _ in range(5):
        pacer.succeeded()
    assert pacer.rate == pytest.approx(2.5 + 5 * 0.5)
    for _ in range(50):
        pacer.succeeded()
    assert pacer.rate == pytest.approx(10.0)


def _seen(last_age: float | None = None, *, late: int = 0, aimed: float | None = None) -> Seen:
    return Seen(BUCKET, polls=0 if last_age is None else 1, last_age=last_age, late_polls=late, aimed=aimed)


def test_poll_aim_explores_then_learns_and_steps_per_generation() -> None:
    clock = RenderClock(floor=0.5, prior=prior_seconds, rng=random.Random(1))
    first = clock.next_poll(_seen()).age
    assert first == pytest.approx(prior_seconds(BUCKET) * FIRST_GUESS)
    assert clock.next_poll(_seen(first)).age == pytest.approx(first * 1.5, rel=0.1)  # exploring: widen
    clock.observe(_seen(), finished_at_age=40.0)
    assert clock.aim(BUCKET) == 40.0  # seeded from the late end
    assert clock.next_poll(_seen(12.0)) == Next(40.0, 40.0)  # a job polled while exploring is re-aimed
    for _ in range(30):  # thirty jobs aimed alike, all caught: one step down, not thirty
        clock.observe(_seen(aimed=40.0), finished_at_age=40.0)
    assert clock.aim(BUCKET) == pytest.approx(40.0 * (1 - STEP_DOWN))
    low = clock.aim(BUCKET)
    for _ in range(30):  # thirty aimed there, all missed: one step up
        clock.observe(_seen(late=1, aimed=low), finished_at_age=41.0)
    assert clock.aim(BUCKET) == pytest.approx(low * (1 + STEP_UP))
    clock.observe(_seen(late=3), finished_at_age=400.0)  # an unaimed straggler
    assert clock.aim(BUCKET) == pytest.approx(low * (1 + STEP_UP))
    # after a miss: asked again soon, then less often
    aim = clock.aim(BUCKET)
    soon = clock.next_poll(_seen(aim, late=1)).age - aim
    later = clock.next_poll(_seen(aim, late=4)).age - aim
    assert 0.5 <= soon < later
    # another bucket starts from what this one taught, not from the raw prior
    other = Bucket("seedance-2", "1080p", 10)
    assert clock.aim(other) == pytest.approx(prior_seconds(other) * aim / prior_seconds(BUCKET), rel=0.05)


@pytest.mark.parametrize("bad", ["../escape.mp4", "/etc/passwd", "a/../../b.mp4", ".", "a/.."])
def test_output_paths_outside_the_output_folder_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UsageError, match="would land outside the output folder"):
        safe_target(tmp_path / "renders", bad)


def test_output_paths_inside_are_resolved(tmp_path: Path) -> None:
    assert safe_target(tmp_path / "r", "c/s/x.mp4") == (tmp_path / "r" / "c/s/x.mp4").resolve()


def test_the_plans_target_check_agrees_with_the_whole_check_on_every_kind_of_path(tmp_path: Path) -> None:
    # folders resolved once per plan must refuse and return exactly what resolving each target whole does
    renders, outside = tmp_path / "renders", tmp_path / "outside"
    (renders / "c" / "plain").mkdir(parents=True)
    (renders / "c" / "inner").mkdir()
    outside.mkdir()
    (renders / "c" / "out").symlink_to(outside, target_is_directory=True)           # a folder leading out
    (renders / "c" / "alias").symlink_to(renders / "c" / "inner", target_is_directory=True)  # one staying in
    (renders / "c" / "plain" / "link.mp4").symlink_to(outside / "x.mp4")            # a name leading out
    (renders / "c" / "plain" / "ok.mp4").symlink_to(renders / "c" / "inner" / "y.mp4")  # a name staying in
    paths = ["c/plain/a.mp4", "c/plain/b.mp4", "c/out/a.mp4", "c/out/deeper/a.mp4", "c/alias/a.mp4",
             "c/plain/link.mp4", "c/plain/ok.mp4", "c/./plain/a.mp4", "new/folder/a.mp4", "c/out",
             "../escape.mp4", "/etc/passwd", "a/../../b.mp4", ".", "a/..", "c/alias/../plain/a.mp4"]

    def whole(relative: str) -> Path | str:
        try:
            return safe_target(renders, relative)
        except UsageError as exc:
            return exc.message

    def cached(check: TargetCheck, relative: str) -> Path | str:
        try:
            return check(relative)
        except UsageError as exc:
            return exc.message

    check = TargetCheck(renders)
    for relative in paths * 2:  # the second round from the folders already resolved
        assert cached(check, relative) == whole(relative), relative
    assert isinstance(whole("c/out/a.mp4"), str) and isinstance(whole("c/plain/link.mp4"), str)
    assert whole("c/alias/a.mp4") == (renders / "c" / "inner" / "a.mp4").resolve()


def test_backoff_retries_only_its_types_with_full_jitter_and_honours_retry_after() -> None:
    settings = RunSettings(retry_wait_initial=1.0, retry_wait_max=8.0)
    hook = Backoff(settings, (RateLimited, TransientError))
    assert hook(ValueError("no")) is False
    waits = [hook(TransientError("x")) for _ in range(6)]
    assert all(0 <= w <= cap for w, cap in zip(waits, [1, 2, 4, 8, 8, 8], strict=True))
    assert hook(RateLimited("slow down", retry_after=3.0)) == 3.0
    assert hook(RateLimited("slow down", retry_after=600.0)) == 8.0  # capped at the run's max wait


def test_tracker_polls_one_job_once_at_a_time_even_when_rescheduled_to_the_same_instant() -> None:
    from engine_support import make_jobs
    from seedance_batch.run.tracking import PollQueue, Tracked

    async def main() -> tuple[int, int]:
        calls, overlapping, active = 0, 0, 0

        async def poll(item: Tracked) -> None:
            nonlocal calls, overlapping, active
            calls += 1
            active += 1
            overlapping = max(overlapping, active)
            await anyio.lowlevel.checkpoint()  # a checkpoint: a twin poll, if started, would run now
            active -= 1
            item.ended = True  # finished: the engine downloads it once

        tracker = PollQueue(poll, RenderClock(floor=0.0, prior=prior_seconds), time_scale=1e-3)  # aim a few ms ahead
        now = time.monotonic()
        item = Tracked(job=make_jobs(1)[0], task_id="task-1", bucket=BUCKET, started=now, deadline=now + 60)
        assert item.seen == Seen(BUCKET)
        tracker.add(item)
        tracker.reschedule(item)  # the same aim again (as a re-aim after learning does): a twin heap entry
        tracker.close()
        with anyio.fail_after(10):
            await tracker.run()
        return calls, overlapping

    calls, overlapping = anyio.run(main)
    assert (calls, overlapping) == (1, 1)


def test_every_poll_policy_is_made_by_name_and_an_unknown_name_is_refused() -> None:
    for name in POLL_POLICIES:
        policy = make_policy(name, floor=0.5, prior=prior_seconds)
        assert not policy.learned(BUCKET) and policy.next_poll(Seen(BUCKET)).age > 0
    assert RunSettings().poll_policy in POLL_POLICIES and RunSettings().webhook_poll_policy in POLL_POLICIES
    with pytest.raises(ValueError, match="no poll policy 'psychic'; known: progress-clock, render-clock, safety-net"):
        make_policy("psychic", floor=0.5, prior=prior_seconds)


def test_the_render_prior_comes_from_the_model_data() -> None:
    from seedance_batch.models import render_prior_seconds

    catalog = load_catalog()
    assert prior_seconds(BUCKET) == render_prior_seconds(catalog, "seedance-2-fast", "480p", 4)
    assert prior_seconds(Bucket("seedance-2", "1080p", 10)) > prior_seconds(BUCKET)  # slower model, more pixels


def test_the_budget_holds_each_submit_then_spends_or_lets_it_go() -> None:
    from seedance_batch.run.budget import LocalBudget

    async def go() -> list[object]:
        budget = LocalBudget(Decimal("1.00"), spent=Decimal("0.30"))
        steps: list[object] = [await budget.reserve(Decimal("0.30")), await budget.reserve(Decimal("0.30"))]
        steps.append(await budget.reserve(Decimal("0.20")))  # 0.30 spent + 0.60 held + 0.20: past the limit
        await budget.settle(Decimal("0.30"), charged=True)   # a task was created
        await budget.settle(Decimal("0.30"), charged=False)  # none was: the hold is let go
        steps += [budget.spent, await budget.reserve(Decimal("0.40")), await budget.reserve(Decimal("0.01"))]
        steps.append(await LocalBudget(None, Decimal(0)).reserve(Decimal(10**6)))  # no budget: no limit
        return steps

    assert anyio.run(go) == [True, True, False, Decimal("0.60"), True, False, True]


def test_stops_keep_the_first_reason_and_say_it_once() -> None:
    from seedance_batch.errors import InsufficientCredits
    from seedance_batch.run.progress import QuietProgress
    from seedance_batch.run.stops import Stops

    progress = QuietProgress()
    stops = Stops(progress, give_up_after=2)
    stops.not_submitted("unreachable")
    stops.submitted()  # a submit went through: the streak starts again
    stops.not_submitted("unreachable")
    assert stops.submitting
    credits = InsufficientCredits("submit: HTTP 402", hint="top up")
    stops.account(credits)
    stops.budget("s/1", Decimal("0.28"), Decimal("1.00"))  # later reasons are kept, not shown
    stops.interrupt()
    assert not stops.submitting and stops.account_error is credits and stops.by_budget and stops.interrupted
    assert progress.notes == ["stopped submitting: submit: HTTP 402; top up; tracking what is in flight"]
    left: list[bool] = []
    stops.on_leave(lambda: left.append(True))
    stops.leave()
    assert left == [True] and progress.notes[-1] == "interrupted: leaving now; run the same command again to resume"


def test_enough_jobs_in_a_row_not_submitted_stop_the_submits() -> None:
    from seedance_batch.run.progress import QuietProgress
    from seedance_batch.run.stops import Stops

    progress = QuietProgress()
    stops = Stops(progress, give_up_after=2)
    stops.not_submitted("submit: could not reach http://h (ConnectError)")
    stops.not_submitted("submit: could not reach http://h (ConnectError)")
    assert not stops.submitting and progress.notes == [
        "stopped submitting: 2 jobs in a row could not be submitted (submit: could not reach http://h "
        "(ConnectError)); tracking what is in flight; run again later"]
