"""Account errors, rate-limit storms, the budget and expired file URLs, end to end."""

from __future__ import annotations

import sqlite3
import time
from decimal import Decimal
from pathlib import Path

from engine_support import ALL_END, SCALE, make_jobs, plan_for, run_engine, settings
from seedance_batch.errors import EXIT_ACCOUNT, EXIT_BUDGET, AuthenticationError, InsufficientCredits
from seedance_batch.ledger import JobState, Ledger
from seedance_batch.simulator import SimulatorConfig, run_simulator


class FastClock:
    """A wall clock for the simulator that runs ``speed`` times faster, and can jump."""

    def __init__(self, speed: float = 1.0) -> None:
        self.origin = time.time()
        self.speed = speed
        self.offset = 0.0

    def __call__(self) -> float:
        return self.origin + (time.time() - self.origin) * self.speed + self.offset


def test_401_stops_at_once_and_exits_4(tmp_path: Path, ledger: Ledger) -> None:
    jobs = make_jobs(5)
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END, api_key="sk-sim-the-right-one")) as sim:
        result = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path), key="sk-sim-wrong")
        assert sim.stats()["submits"]["accepted"] == 0
    assert isinstance(result.error, AuthenticationError)
    assert result.exit_code == EXIT_ACCOUNT
    assert result.error.format().endswith("check APIDOT_API_KEY (environment or .env)")
    # nothing was created: the job that met the 401 is back to pending, the rest never started
    assert {r.state for r in result.records} == {JobState.PENDING}
    assert len(result.records) == 1


def test_402_mid_run_stops_submitting_keeps_tracking_exits_4(tmp_path: Path, ledger: Ledger) -> None:
    jobs = make_jobs(10)
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END, credits=56 * 4)) as sim:
        result = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path, submits_per_minute=300))
        assert sim.stats()["submits"]["accepted"] == 4
    assert isinstance(result.error, InsufficientCredits) and result.exit_code == EXIT_ACCOUNT
    counts = result.counts()
    assert counts["done"] == 4  # what was in flight was tracked and downloaded
    assert set(counts) == {"done", "pending"}
    assert "top up the APIDot account" in result.error.format()


def test_429_storm_slows_the_whole_run_and_loses_nothing(tmp_path: Path, ledger: Ledger) -> None:
    # The simulator's clock runs 60x: its "20 submits a minute" is 20 a real second.
    clock = FastClock(60.0)
    jobs = make_jobs(40)
    # The rate limit of earlier simulators (a sliding minute, Retry-After on every 429): the
    # pacer honours Retry-After; the contract's fixed windows without it are test_engine_pacing.py's.
    config = SimulatorConfig(time_scale=SCALE * 60, submits_per_minute=20, rate_window=60.0,
                             rate_limit_mode="sliding", retry_after=True, faults=ALL_END)
    with run_simulator(config, clock=clock) as sim:
        run_settings = settings(tmp_path, submits_per_minute=3000, retry_wait_max=0.3, max_attempts=20)
        result = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, run_settings)
        stats = sim.stats()
    assert result.counts() == {"done": 40}
    assert set(stats["submits"]["by_body"].values()) == {1}
    assert stats["rate_limited"]["submit"] > 0
    assert result.stats["submit_rate_decreases"] > 0
    # the run slowed down instead of hammering: far fewer 429s than one per try at full speed
    assert stats["rate_limited"]["submit"] < 3 * len(jobs)


def test_budget_stops_before_the_job_that_would_cross_it(tmp_path: Path, ledger: Ledger) -> None:
    jobs = make_jobs(10)  # $0.28 each
    plan = plan_for(jobs, ledger, budget=Decimal("1.00"))  # the engine re-checks before every submit
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END)) as sim:
        result = run_engine(plan, sim.base_url, ledger, settings(tmp_path, max_in_flight=2))
        stats = sim.stats()
    assert stats["submits"]["accepted"] == 3, (stats["submits"], stats["errors"], result.counts())
    assert result.exit_code == EXIT_BUDGET and result.stopped_by_budget
    assert result.counts() == {"done": 3, "planned": 7}
    assert sum(r.cost_usd for r in result.records if r.charged) <= Decimal("1.00")


def test_expired_file_url_is_refreshed_by_asking_status_again(tmp_path: Path, ledger: Ledger) -> None:
    clock = FastClock()
    jobs = make_jobs(2)
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END, url_ttl=30), clock=clock) as sim:
        first = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path))
        assert first.counts() == {"done": 2}
        # Pretend the download never happened: the row is back to finished with its old URL...
        db = sqlite3.connect(ledger.path)
        db.execute("UPDATE jobs SET state = 'finished', sha256 = NULL, size = NULL")
        db.commit()
        for rec in first.records:
            (tmp_path / "renders" / rec.output_path).unlink()
        clock.offset = 3600.0  # ...and that URL is now an hour old
        served = sim.stats()["files_served"]
        again = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, settings(tmp_path))
        stats = sim.stats()
    assert again.counts() == {"done": 2} and again.submitted == 0
    assert stats["errors"]["403"] >= 2 and stats["files_served"] == served + 2
    kinds = [e.kind for e in ledger.events("demo")]
    assert kinds.count("url_expired") == 2
    for rec in again.records:
        assert (tmp_path / "renders" / rec.output_path).stat().st_size == rec.size
