"""Many runner processes on one PostgreSQL ledger, against the real simulator: nobody pays twice.

Each runner is a real ``seedance-batch run`` subprocess in a folder of its own (a CI machine
of a matrix), all on one ledger (a real PostgreSQL server: tests/pg_server.py) and one
simulated account whose limits equal the manifest's. The simulator outlives every runner;
its stats are the proof: no job key billed twice, no task id lost, every job ended, the
combined submit rate within the limit (no 429s), the in-flight count within
``run.max_in_flight``, the budget never crossed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine_support import ALL_END, one_shot_manifest
from seedance_batch.ledger import JobState, open_ledger
from seedance_batch.pipeline import load_plan
from seedance_batch.simulator import Latency, SimulatorConfig, run_simulator

SCALE = 0.05
RATE = 60  # submits a service minute: the manifest's, and the simulated account's
IN_FLIGHT = 12
# Quick renders (service seconds): tasks end while the runners submit, so the in-flight limit binds.
QUICK = Latency(queue_seconds=2.0, base_seconds=8.0, per_video_second=1.0, jitter=0.2)


def manifest(name: str, jobs: int, *, budget: Decimal | None = None, edited: int = 0) -> str:
    """A campaign of ``jobs`` cheap jobs; with ``edited``, the prompts of its last ``edited`` jobs changed
    (another version of the same campaign: those are new jobs, the others the same)."""
    values = [f"v{i:03d}" if i < jobs - edited else f"v{i:03d} edited" for i in range(jobs)]
    text = one_shot_manifest(name, values, {"submits_per_minute": RATE, "max_in_flight": IN_FLIGHT})
    return text + (f"budget:\n  max_usd: {budget}\n" if budget is not None else "")


def folder(root: Path, name: str, text: str) -> Path:
    """A runner's own working folder (its renders and reports), with the manifest in it."""
    where = root / name
    where.mkdir()
    (where / "m.yaml").write_text(text)
    return where


def start(cwd: Path, base_url: str, state: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIDOT_", "SEEDANCE_"))}
    env.update({"CI": "true", "APIDOT_BASE_URL": base_url, "APIDOT_API_KEY": "sk-sim-multi"})
    # Its progress goes to a file (run.log, appended by a restart), not a pipe: a pipe nobody drains
    # while another runner is waited for fills up, and a runner blocked writing to it stops renewing
    # its lease (the others then take its tasks over, as from a dead one).
    with (cwd / "run.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "seedance_batch", "run", "m.yaml", "--time-scale",
                                 str(SCALE), "--state", state, "--yes"], cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)


def log_of(cwd: Path) -> str:
    """What the runner (and its restarts) in ``cwd`` wrote on stderr."""
    return (cwd / "run.log").read_text(errors="replace")


def job_price(cwd: Path) -> Decimal:
    _, plan = load_plan(cwd / "m.yaml", None)
    return plan.jobs[0].priced.cost.usd


def most_in_flight(sim: Any) -> int:
    """The most tasks the service held at once (created, not yet ended), from its own records."""
    marks = sorted(mark for task in sim.tasks()["tasks"].values()
                   for mark in ((task["created"], 1), (task["ends_at"], -1)))
    most = current = 0
    for _, step in marks:
        current += step
        most = max(most, current)
    return most


def test_four_runners_two_killed_and_restarted_render_every_job_once(tmp_path: Path, pg_url: str) -> None:
    jobs, seed = 400, random.randrange(1 << 30)
    kills = sorted(random.Random(seed).sample(range(40, 320), 2))  # at random instants: after so many submits
    text = manifest("team", jobs)
    folders = [folder(tmp_path, f"runner{i}", text) for i in range(4)]
    budget = job_price(folders[0]) * jobs
    for where in folders:
        (where / "m.yaml").write_text(manifest("team", jobs, budget=budget))
    config = SimulatorConfig(time_scale=SCALE, faults=ALL_END, latency=QUICK, submits_per_minute=RATE)
    started = time.monotonic()
    with run_simulator(config) as sim:
        procs = [start(where, sim.base_url, pg_url) for where in folders]
        for victim, point in enumerate(kills):
            _wait_for_submits(sim, point)
            procs[victim].send_signal(signal.SIGKILL)
            assert procs[victim].wait(timeout=10) == -signal.SIGKILL
            procs[victim] = start(folders[victim], sim.base_url, pg_url)  # started again at once
        for proc in procs:
            proc.wait(timeout=120)
        errors = [log_of(where) for where in folders]
        stats = sim.stats()
        peak = most_in_flight(sim)
    elapsed = time.monotonic() - started
    with open_ledger(pg_url) as led:
        rows = {r.key: r for r in led.records("team")}
    assert all("Traceback" not in err for err in errors), (seed, errors)
    assert not [line for err in errors for line in err.splitlines() if "not submitted" in line], seed
    unknown = [r for r in rows.values() if r.state is JobState.UNKNOWN]
    # exit 1 only when a kill left a job unknown (not done: never submitted again on its own)
    codes = {proc.returncode for proc in procs}
    assert codes <= ({0, 1} if unknown else {0}), (seed, [err[-500:] for err in errors])
    by_body = stats["submits"]["by_body"]
    assert max(by_body.values()) == 1, seed  # no job key billed twice
    assert stats["rate_limited"]["submit"] == 0, (seed, stats["rate_limited"])  # the combined rate held
    assert peak <= IN_FLIGHT, (seed, peak)
    # every job ended: done, or unknown where a kill fell mid-submit (never submitted again)
    assert len(rows) == jobs and {r.state for r in rows.values()} <= {JobState.DONE, JobState.UNKNOWN}, seed
    # a runner holds one claimed job waiting for its turn, and its submits in the air (one or two)
    assert len(unknown) <= 3 * len(kills), (seed, len(unknown))
    # no task id lost: every task the service created is a done job's, unless the kill fell
    # between the POST and the commit of its answer (that job is unknown)
    done = [r for r in rows.values() if r.state is JobState.DONE]
    assert len({r.task_id for r in done}) == len(done) and all(by_body.get(r.key) == 1 for r in done)
    assert stats["tasks"]["total"] == sum(by_body.values()) and stats["tasks"]["total"] - len(done) <= len(unknown)
    spent = sum((r.cost_usd for r in rows.values() if r.charged), Decimal(0))
    assert spent <= budget, seed
    # every video was downloaded once, by whichever runner tracked it last
    videos = [p for where in folders for p in (where / "renders").rglob("*.mp4")]
    assert len(videos) == len(done) and len({p.name for p in videos}) == len(done)
    assert elapsed < 120, elapsed


def test_two_manifest_versions_at_once_share_one_budget_and_whoever_cannot_reserve_exits_3(
        tmp_path: Path, pg_url: str) -> None:
    """Each plan fits the budget, both together do not: spending stops at the budget, never past it."""
    jobs = 40
    first = folder(tmp_path, "main", manifest("spend", jobs))
    price = job_price(first)
    budget = price * 50  # each version's 40 jobs fit; the 60 distinct jobs of both do not
    (first / "m.yaml").write_text(manifest("spend", jobs, budget=budget))
    second = folder(tmp_path, "branch", manifest("spend", jobs, budget=budget, edited=jobs // 2))
    config = SimulatorConfig(time_scale=SCALE, faults=ALL_END, latency=QUICK, submits_per_minute=RATE)
    with run_simulator(config) as sim:
        procs = [start(where, sim.base_url, pg_url) for where in (first, second)]
        results = [(proc.wait(timeout=120), log_of(where)) for proc, where in zip(procs, (first, second), strict=True)]
        stats = sim.stats()
    with open_ledger(pg_url) as led:
        rows = led.records("spend")
    codes = sorted(code for code, _ in results)
    assert 3 in codes and set(codes) <= {0, 3}, results
    assert all("Traceback" not in err for _, err in results)
    assert any("budget" in err for code, err in results if code == 3), results
    assert max(stats["submits"]["by_body"].values()) == 1
    charged = [r for r in rows if r.charged]
    assert len(charged) == stats["tasks"]["total"] == 50  # spending stopped at the budget, not before
    assert sum((r.cost_usd for r in charged), Decimal(0)) <= budget


def test_runners_that_nobody_stops_all_exit_0_once_every_job_is_done(tmp_path: Path, pg_url: str) -> None:
    """A matrix of runners that all live (the CI recipe's way): every one of them ends when the campaign is
    rendered, not when its own jobs are, and exits 0. Renders of uneven length, so one runner's last job
    ends after another's: a runner that left before the others' jobs ended read them not done and exited 1."""
    # Few jobs: the submits are over before a runner's first renewal, so the count it waits on is its join's.
    jobs = 12
    folders = [folder(tmp_path, f"runner{i}", manifest("matrix", jobs)) for i in range(3)]
    uneven = Latency(queue_seconds=2.0, base_seconds=8.0, per_video_second=1.0, jitter=0.5)
    config = SimulatorConfig(time_scale=SCALE, faults=ALL_END, latency=uneven, submits_per_minute=RATE)
    with run_simulator(config) as sim:
        procs = [start(where, sim.base_url, pg_url) for where in folders]
        codes = [proc.wait(timeout=120) for proc in procs]
        stats = sim.stats()
    errors = [log_of(where) for where in folders]
    assert codes == [0, 0, 0], [err[-800:] for err in errors]
    # a job another runner claimed first is skipped, never a "not submitted" problem line
    assert not [line for err in errors for line in err.splitlines() if "not submitted" in line]
    assert stats["tasks"]["total"] == jobs and max(stats["submits"]["by_body"].values()) == 1
    with open_ledger(pg_url) as led:
        assert {r.state for r in led.records("matrix")} == {JobState.DONE}


def _wait_for_submits(sim: Any, count: int) -> None:
    deadline = time.monotonic() + 90
    while sim.stats()["submits"]["requests"] < count:
        assert time.monotonic() < deadline, "the runners never reached the kill point"
        time.sleep(0.003)  # polling the stats for the kill point, not waiting for luck


def test_a_tracking_write_another_runner_overtook_is_a_repeat_with_a_note_not_an_error(pg_url: str) -> None:
    """A runner whose lease ran out while it lived tracks on a task another runner took over and ended:
    its late writes find the row moved past them and are read as repeats (noted), never the end of its run."""
    import anyio

    from seedance_batch.ledger import TransitionRefused
    from seedance_batch.run.takeover import SharedTracking

    with open_ledger(pg_url) as led:
        led.begin_submit(campaign="c", key="k1", label="s/k1", shot="s", request={"model": "m"}, credits=1,
                         cost_usd=Decimal("0.10"), output_path=None)
        led.submitted("c", "k1", "task-1", "not_started")
        led.finished("c", "k1", "https://files.example/v.mp4")  # the runner that took it over...
        led.downloaded("c", "k1", "c/k1.mp4", 1, "ab" * 32)     # ...has ended it

        async def late() -> None:
            stale = SharedTracking(led)
            assert await stale.finished("c", "k1", "https://files.example/v.mp4") is False
            assert await stale.status_seen("c", "k1", "running") is False
            with pytest.raises(TransitionRefused):  # a refusal that is no overtaking is raised as before
                await stale.submitted("c", "k1", "task-2", "not_started")

        anyio.run(late)
        notes = [e.detail for e in led.events("c") if e.kind == "overtaken"]
    assert notes == [{"operation": "finished", "state": "done"}, {"operation": "status_seen", "state": "done"}]


def test_a_runner_whose_submits_are_out_waits_for_a_job_another_runner_claimed_since_it_last_counted(
        tmp_path: Path, pg_url: str) -> None:
    """Found by bench/multi_runner.py (2 runners, 100 jobs: one exited 1 with every job done): after its
    submits a runner waited on the count of the others' jobs in flight its last renewal had made, so a job
    claimed since was not waited for; it ended first, read that job not done, and exited 1."""
    import anyio

    from seedance_batch.ledger.aio import AsyncLedger
    from seedance_batch.ledger.claims import ClaimTerms
    from seedance_batch.run.client import ApiClient
    from seedance_batch.run.context import RunContext
    from seedance_batch.run.polling import catalog_prior, make_policy
    from seedance_batch.run.progress import QuietProgress
    from seedance_batch.run.settings import RunSettings
    from seedance_batch.run.stops import Stops
    from seedance_batch.run.takeover import Sharing
    from seedance_batch.run.tracking import Tracker

    (tmp_path / "m.yaml").write_text(manifest("settle", 2))
    with open_ledger(pg_url) as led:
        _, plan = load_plan(tmp_path / "m.yaml", led)
        job, cost = plan.jobs[0].priced.job, plan.jobs[0].priced.cost
        settings = RunSettings(time_scale=SCALE)

        async def runner() -> None:
            progress = QuietProgress()
            async with ApiClient("http://127.0.0.1:9", "sk-sim-unused") as client:  # never called here
                stops = Stops(progress, give_up_after=settings.give_up_after)
                run = RunContext(plan, settings, client, AsyncLedger(led), progress, stops, anyio.Semaphore(2))
                tracker = Tracker(run, make_policy(settings.poll_policy, floor=settings.poll_interval,
                                                   prior=catalog_prior(plan.catalog)))
                sharing = Sharing.for_run(run, tracker)
                assert await sharing.join() == [] and sharing.waiting == 0  # nobody holds anything yet
                other = led.join(plan.campaign, 60.0)  # a live runner, which claims a job after that count
                led.claim(campaign=plan.campaign, key=job.key, label=job.label, shot=job.shot, request=job.request,
                          credits=cost.credits, cost_usd=cost.usd, output_path=job.output_path,
                          terms=ClaimTerms(owner=other, interval=0.001))
                with anyio.move_on_after(2 * sharing.every) as waited:  # the old code returned at once
                    await sharing.until_settled()
                assert waited.cancelled_caught and sharing.waiting == 1
                led.submitted(plan.campaign, job.key, "task-other", "running")  # the other runner ends it
                led.finished(plan.campaign, job.key, "https://files.example/v.mp4")
                led.downloaded(plan.campaign, job.key, job.output_path, 1, "ab" * 32)
                with anyio.fail_after(4 * sharing.every):
                    await sharing.until_settled()
                assert sharing.waiting == 0 and sharing.taken == 0  # waited for it, never took it over
                await sharing.leave()

        anyio.run(runner)
