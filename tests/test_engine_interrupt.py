"""Ctrl-C once: stop submitting, keep tracking; twice: leave now. Real subprocesses, real signals."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from engine_support import ALL_END, numbered_manifest
from seedance_batch.simulator import SimulatorConfig, run_simulator

SCALE = 0.01
JOBS = 30


def start(cwd: Path, base_url: str) -> subprocess.Popen[str]:
    (cwd / "m.yaml").write_text(numbered_manifest("ctrlc", JOBS, max_in_flight=30))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIDOT_", "SEEDANCE_"))}
    env.update({"CI": "true", "APIDOT_BASE_URL": base_url, "APIDOT_API_KEY": "sk-sim-ctrlc"})
    return subprocess.Popen([sys.executable, "-m", "seedance_batch", "run", "m.yaml", "--time-scale", str(SCALE)],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_submits(proc: subprocess.Popen[str], sim, count: int) -> None:
    deadline = time.monotonic() + 60
    while sim.stats()["submits"]["accepted"] < count:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)


def ledger_states(cwd: Path) -> dict[str, int]:
    db = sqlite3.connect(cwd / ".seedance" / "ledger.sqlite")
    return dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())


def test_one_ctrl_c_stops_submitting_and_keeps_tracking(tmp_path: Path) -> None:
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END)) as sim:
        proc = start(tmp_path, sim.base_url)
        wait_for_submits(proc, sim, 5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        submitted = sim.stats()["submits"]["accepted"]
    assert proc.returncode == 130
    assert "interrupted: no new submits; tracking what is in flight" in err
    assert "Traceback" not in err
    assert 5 <= submitted < JOBS
    # everything that was submitted was tracked to the end and downloaded
    assert ledger_states(tmp_path) == {"done": submitted}


def test_two_ctrl_c_leave_at_once_with_a_consistent_ledger(tmp_path: Path) -> None:
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END)) as sim:
        proc = start(tmp_path, sim.base_url)
        wait_for_submits(proc, sim, 5)
        proc.send_signal(signal.SIGINT)
        seen = []  # the second Ctrl-C only after the first was heard (the OS merges pending signals)
        while not seen or "interrupted: no new submits" not in seen[-1]:
            seen.append(proc.stderr.readline())
            assert seen[-1], "".join(seen)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        err = "".join(seen) + err
        created = sim.stats()["tasks"]["total"]
        states = ledger_states(tmp_path)
        assert proc.returncode == 130
        assert "interrupted: leaving now; run the same command again to resume" in err
        assert "submitting" not in states and "pending" not in states
        # resume: in-flight jobs are tracked, not paid for again; the rest are submitted
        again = start(tmp_path, sim.base_url)
        again.communicate(timeout=60)
        by_body = sim.stats()["submits"]["by_body"]
    assert again.returncode in (0, 1)
    assert max(by_body.values()) == 1
    assert created <= len(by_body)
    final = ledger_states(tmp_path)
    assert set(final) <= {"done", "unknown"} and sum(final.values()) == JOBS
