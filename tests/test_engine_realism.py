"""Runs against the service's answers as they really come: a thumbnail listed before the video,
files at ``data.files`` or ``data.output.files``, ``completed`` for finished, ``processing`` for running,
failed tasks refunded (``credits_return``).

The real simulator over loopback (its :class:`~seedance_batch.simulator.Answers` knobs set so
that every task takes the shape under test), a real SQLite ledger, the real downloads.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from engine_support import ALL_END, SIM_KEY, make_jobs, plan_for, run_engine, settings
from seedance_batch.ledger import JobState, Ledger
from seedance_batch.run.client import ApiClient
from seedance_batch.run.engine import RunResult, execute
from seedance_batch.run.progress import QuietProgress
from seedance_batch.simulator import Answers, Faults, SimulatorConfig, run_simulator
from seedance_batch.simulator.assets import sample_mp4

SCALE = 0.004


def run_against(answers: Answers, tmp_path: Path, ledger: Ledger, jobs: int = 6,
                faults: Faults = ALL_END) -> tuple[object, dict]:
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=faults, answers=answers)) as sim:
        result = run_engine(plan_for(make_jobs(jobs), ledger), sim.base_url, ledger, settings(tmp_path))
        return result, sim.stats()


@pytest.mark.parametrize("at_data", [0.0, 1.0], ids=["output.files", "data.files"])
def test_a_thumbnail_listed_before_the_video_is_never_taken_for_it(at_data: float, tmp_path: Path,
                                                                   ledger: Ledger) -> None:
    result, stats = run_against(Answers(thumbnail=1.0, files_at_data=at_data, completed=0), tmp_path, ledger)
    assert result.counts() == {"done": 6}  # type: ignore[attr-defined]
    assert stats["thumbnails_served"] == 0 and stats["files_served"] == 6
    for rec in result.records:  # type: ignore[attr-defined]
        assert "thumb" not in rec.file_url and (tmp_path / "renders" / rec.output_path).read_bytes() == sample_mp4()


def test_completed_is_read_as_finished_and_said_once_per_run(tmp_path: Path, ledger: Ledger,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    progress = QuietProgress()

    async def go() -> RunResult:
        async with ApiClient(sim.base_url, SIM_KEY) as client:
            return await execute(plan_for(make_jobs(6), ledger), settings(tmp_path), client=client, ledger=ledger,
                                 progress=progress)

    with caplog.at_level(logging.INFO, logger="seedance_batch.run.client"), \
            run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END, answers=Answers(completed=1.0))) as sim:
        result = anyio.run(go)
    assert result.counts() == {"done": 6}
    said = [r.getMessage() for r in caplog.records if r.name == "seedance_batch.run.client"]
    assert said == ["the service says 'completed' for 'finished'; read as finished (logged once per run)"]
    # and where the user looks: the run's progress lines, once
    assert progress.notes.count("the service says 'completed' for 'finished'; read as finished "
                                "(said once per run)") == 1
    assert {r.api_status for r in result.records} == {"finished"}


def test_processing_is_read_as_still_rendering(tmp_path: Path, ledger: Ledger) -> None:
    result, _ = run_against(Answers(processing=1.0, completed=0), tmp_path, ledger)
    assert result.counts() == {"done": 6}  # type: ignore[attr-defined]
    words = {e.detail.get("api_status") for e in ledger.events("demo") if e.kind == "status"}
    assert "processing" in words


@pytest.mark.parametrize(("refund", "shown", "spent"), [
    (1.0, 1.0, Decimal("0")),      # refunded in full and said so: nothing spent
    (0.5, 1.0, Decimal("0.84")),   # half given back: half of 6 x $0.28 spent
    (1.0, 0.0, Decimal("1.68")),   # the status does not say: counted in full (charged at submit)
])
def test_a_failed_task_the_service_refunded_is_not_counted_as_spent(
        refund: float, shown: float, spent: Decimal, tmp_path: Path, ledger: Ledger) -> None:
    result, stats = run_against(Answers(refund=refund, refund_shown=shown), tmp_path, ledger,
                                faults=Faults(task_fail=1.0, task_stuck=0.0))
    assert result.counts() == {"failed": 6}  # type: ignore[attr-defined]
    assert stats["credits"]["refunded"] == int(6 * 56 * refund)  # the service did give them back
    refunds = [e for e in ledger.events("demo") if e.kind == "refunded"]
    assert len(refunds) == (6 if shown else 0)
    assert Decimal(result.stats["spent_usd"]) == spent  # type: ignore[attr-defined]
    assert all(r.state is JobState.FAILED for r in ledger.records("demo"))
    assert sum((r.refund_usd for r in ledger.records("demo")), Decimal(0)) == Decimal("1.68") - spent
    # and a later plan's budget counts what is left spent, no more
    assert plan_for(make_jobs(6), ledger).spent_usd == spent
