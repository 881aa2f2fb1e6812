"""The run against the real simulator over loopback, with a real SQLite ledger."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine_support import SCALE, make_jobs, plan_for, run_engine, settings
from seedance_batch.ledger import Ledger, open_ledger
from seedance_batch.simulator import SimulatorConfig, run_simulator


@pytest.fixture
def ledger(tmp_path: Path):
    with open_ledger(tmp_path / "ledger.sqlite") as opened:
        yield opened


def test_happy_path_renders_downloads_and_second_run_submits_nothing(tmp_path: Path, ledger: Ledger) -> None:
    jobs = make_jobs(12)
    with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        result = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path))
        assert result.exit_code == 0, result.counts()
        assert result.counts() == {"done": 12}
        stats = sim.stats()
        assert stats["submits"]["by_body"] == {job.key: 1 for job in jobs}
        for rec in result.records:
            path = tmp_path / "renders" / rec.output_path
            assert path.read_bytes()[4:8] == b"ftyp"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == rec.sha256
            assert path.stat().st_size == rec.size
        assert not list((tmp_path / "renders").rglob("*.part"))
        # second run: everything done, nothing submitted, nothing asked
        again = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path))
        assert again.exit_code == 0 and again.submitted == 0
        assert sim.stats()["submits"]["by_body"] == stats["submits"]["by_body"]
        assert sim.stats()["status_calls"] == stats["status_calls"]
