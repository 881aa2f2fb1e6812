"""The run against the real simulator over loopback, with a real SQLite ledger."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from engine_support import ALL_END, SCALE, make_jobs, plan_for, run_engine, settings
from seedance_batch.ledger import Ledger
from seedance_batch.simulator import SimulatorConfig, run_simulator


def test_happy_path_renders_downloads_and_second_run_submits_nothing(tmp_path: Path, ledger: Ledger) -> None:
    jobs = make_jobs(12)
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END)) as sim:
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


class Watched:
    """The real ledger, with the thread of every call it gets noted."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.threads: list[tuple[str, int]] = []

    def __getattr__(self, name: str):
        attr = getattr(self._ledger, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self.threads.append((name, threading.get_ident()))
            return attr(*args, **kwargs)

        return call


def test_every_ledger_call_of_a_run_is_made_off_the_event_loop(tmp_path: Path, ledger: Ledger) -> None:
    jobs = make_jobs(6)
    watched = Watched(ledger)
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END)) as sim:
        plan = plan_for(jobs, ledger)
        result = run_engine(plan, sim.base_url, watched, settings(tmp_path))  # type: ignore[arg-type]
    assert result.counts() == {"done": 6}
    loop_thread = threading.get_ident()  # anyio.run runs the loop on the calling thread
    assert {name for name, _ in watched.threads} >= {"begin_submit", "submitted", "finished", "downloaded", "records"}
    assert all(thread != loop_thread for _, thread in watched.threads), watched.threads


def test_a_run_leaves_stamina_hooks_to_the_application(tmp_path: Path, ledger: Ledger) -> None:
    # The engine used to clear stamina's process-wide hooks on every run; the CLI sets them now.
    import stamina.instrumentation

    from seedance_batch.simulator import Faults

    seen: list[object] = []
    stamina.instrumentation.set_on_retry_hooks([seen.append])
    try:
        faults = Faults(seed=3, task_stuck=0, on=frozenset({"submit"}), server_error=0.5)
        with run_simulator(SimulatorConfig(time_scale=SCALE, faults=faults)) as sim:
            result = run_engine(plan_for(make_jobs(6), ledger), sim.base_url, ledger, settings(tmp_path, max_attempts=10))
        assert result.counts() == {"done": 6}
        assert seen  # the retries reached the application's hook
        assert stamina.instrumentation.get_on_retry_hooks() == (seen.append,)
    finally:
        stamina.instrumentation.set_on_retry_hooks(None)
