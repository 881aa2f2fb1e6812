"""Every fault class of the simulator, end to end: what each job ends as, and that no
request body is ever submitted twice unless the user asked for it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from engine_support import ALL_END, SCALE, make_jobs, plan_for, run_engine, settings
from seedance_batch.ledger import JobState, Ledger
from seedance_batch.simulator import Faults, SimulatorConfig, run_simulator

SHORT = httpx.Timeout(connect=2.0, read=0.6, write=2.0, pool=5.0)


def by_body(sim) -> dict[str, int]:
    return sim.stats()["submits"]["by_body"]


def states(result) -> dict[str, int]:
    return result.counts()


@pytest.mark.parametrize("fault", ["server_error", "error_code", "slow"])
def test_answered_faults_are_retried_until_done(fault: str, tmp_path: Path, ledger: Ledger) -> None:
    jobs = make_jobs(10)
    faults = Faults(seed=3, task_stuck=0, slow_seconds=0.05, **{fault: 0.4})
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=faults)) as sim:
        result = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path, max_attempts=10))
        assert states(result) == {"done": 10}
        assert result.exit_code == 0
        assert set(by_body(sim).values()) == {1}
        assert sim.stats()["faults"].get(fault, 0) > 0
    if fault != "slow":
        assert any(r.attempts > 1 for r in ledger.records("demo"))  # some submits were retried


@pytest.mark.parametrize("fault", ["drop", "malformed"])
def test_status_faults_are_retried(fault: str, tmp_path: Path, ledger: Ledger) -> None:
    jobs = make_jobs(8)
    faults = Faults(seed=5, task_stuck=0, on=frozenset({"status"}), **{fault: 0.4})
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=faults)) as sim:
        result = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path))
        assert states(result) == {"done": 8}
        assert sim.stats()["faults"][fault] > 0


@pytest.mark.parametrize("fault", ["drop", "malformed"])
def test_unreadable_submit_answers_are_unknown_never_resubmitted(fault: str, tmp_path: Path, ledger: Ledger) -> None:
    # A dropped connection or an unreadable 200: the client cannot tell whether a task exists.
    jobs = make_jobs(8)
    faults = Faults(seed=11, task_stuck=0, on=frozenset({"submit"}), **{fault: 0.5})
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=faults)) as sim:
        result = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path))
        counts = states(result)
        assert counts.get("unknown", 0) > 0 and counts.get("done", 0) > 0
        assert set(counts) <= {"done", "unknown"}
        assert result.exit_code == 1
        again = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path))
        assert again.submitted == 0  # unknown jobs are never resubmitted on their own
        assert all(n <= 1 for n in by_body(sim).values())


def test_ambiguous_submit_is_unknown_then_resubmitted_only_when_asked(tmp_path: Path, ledger: Ledger) -> None:
    jobs = make_jobs(8)
    faults = Faults(seed=2, task_stuck=0, ambiguous_submit=0.4, hang_seconds=5.0)
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=faults)) as sim:
        result = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path), timeout=SHORT)
        unknown = [r for r in result.records if r.state is JobState.UNKNOWN]
        assert unknown and result.exit_code == 1
        assert all(r.error_class == "ambiguous_submit" and r.task_id is None for r in unknown)
        created = by_body(sim)
        # the service did create those tasks: one submit per body, never a silent second
        assert all(created[r.key] == 1 for r in unknown)
        assert set(created.values()) == {1}
        plain = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path), timeout=SHORT)
        assert plain.submitted == 0 and by_body(sim) == created
    # told to: resubmitted (a healthy simulator this time), and each paid twice, knowingly
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END)) as sim:
        told = run_engine(plan_for(jobs, ledger, resubmit_unknown=True), sim.base_url, ledger, settings(tmp_path))
        assert told.submitted == len(unknown)
        assert states(told) == {"done": 8}
        assert set(by_body(sim)) == {r.key for r in unknown}


def test_failed_tasks_fail_and_retry_failed_resubmits(tmp_path: Path, ledger: Ledger) -> None:
    jobs = make_jobs(8)
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=Faults(seed=4, task_stuck=0, task_fail=0.5))) as sim:
        result = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path))
        failed = [r for r in result.records if r.state is JobState.FAILED]
        assert failed and result.exit_code == 1
        assert all(r.error_class == "task_failed" and r.error_message and r.task_id for r in failed)
        assert run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path)).submitted == 0
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END)) as sim:
        again = run_engine(plan_for(jobs, ledger, retry_failed=True), sim.base_url, ledger, settings(tmp_path))
        assert again.submitted == len(failed) and states(again) == {"done": 8}


def test_stuck_tasks_time_out_and_a_later_run_resumes_them(tmp_path: Path, ledger: Ledger) -> None:
    jobs = make_jobs(6)
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=Faults(seed=9, task_stuck=0.5))) as sim:
        # 300 service seconds x SCALE = 1.2 s per job before timed_out
        result = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path, timeout=300))
        stuck = [r for r in result.records if r.state is JobState.TIMED_OUT]
        assert stuck and result.exit_code == 1
        assert all(r.task_id for r in stuck)
        calls = sim.stats()["status_calls"]
        again = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path, timeout=100))
        assert again.submitted == 0  # tracked again, never paid for twice
        assert sim.stats()["status_calls"] > calls
        assert {r.key for r in again.records if r.state is JobState.TIMED_OUT} == {r.key for r in stuck}


def test_an_unreachable_service_leaves_jobs_pending_and_stops_submitting(tmp_path: Path, ledger: Ledger) -> None:
    import socket

    from seedance_batch.plan import Change
    from seedance_batch.run.settings import RunSettings

    give_up = RunSettings().give_up_after

    with socket.socket() as closed:  # a port nothing listens on: every connect is refused
        closed.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    jobs = make_jobs(8)
    one_at_a_time = settings(tmp_path, max_attempts=2, max_in_flight=1)
    result = run_engine(plan_for(jobs, ledger), base_url, ledger, one_at_a_time)
    # Nothing reached the service: nothing failed, nothing is spent, and the run stopped early.
    assert states(result) == {"pending": give_up, "planned": 8 - give_up}
    assert result.exit_code == 1
    assert all(r.error_class == "transient" for r in result.records)
    assert {r.error_message for r in result.records} == {f"submit: could not reach {base_url} (ConnectError)"}
    assert [e.kind for e in ledger.events("demo")].count("gave_up") == give_up
    # The next run submits every one of them again, without --retry-failed.
    assert {p.change for p in plan_for(jobs, ledger).jobs} == {Change.NEW}


def test_a_video_that_cannot_be_written_stops_submitting_and_a_later_run_saves_it(
        tmp_path: Path, ledger: Ledger) -> None:
    # output.dir under a plain file: every write fails with an OSError, as on a full disk.
    from dataclasses import replace

    (tmp_path / "blocker").write_text("a file, not a folder")
    jobs = make_jobs(5)
    one_at_a_time = replace(settings(tmp_path, max_in_flight=1), output_dir=tmp_path / "blocker" / "renders")
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END)) as sim:
        result = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, one_at_a_time)
        # the paid video stays finished (not failed: never paid again), and nothing more is paid for
        assert states(result) == {"finished": 1, "planned": 4}
        assert result.exit_code == 1
        [event] = [e for e in ledger.events("demo") if e.kind == "download_failed"]
        assert event.detail["error"].endswith("Not a directory")
        (tmp_path / "blocker").unlink()
        again = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, one_at_a_time)
        assert states(again) == {"done": 5} and again.submitted == 4
        assert set(by_body(sim).values()) == {1}
