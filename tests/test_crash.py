"""kill -9 at several points of a real `seedance-batch run`, then run again.

The simulator lives in this test process and outlives every runner; the kill
points are found by watching its stats (submits received), never by sleeping.
Afterwards: every job ends exactly once, no request body was submitted twice,
and no task id the service handed out was lost.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from engine_support import ALL_END, numbered_manifest
from seedance_batch.ledger import open_ledger
from seedance_batch.simulator import SimulatorConfig, run_simulator

SCALE = 0.01
JOBS = 40
KILL_AFTER_SUBMITS = (1, 7, 16, 27, JOBS)


def start_run(cwd: Path, base_url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIDOT_", "SEEDANCE_"))}
    env.update({"CI": "true", "APIDOT_BASE_URL": base_url, "APIDOT_API_KEY": "sk-sim-crash"})
    return subprocess.Popen([sys.executable, "-m", "seedance_batch", "run", "m.yaml", "--time-scale", str(SCALE)],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_when(proc: subprocess.Popen[bytes], sim, submits: int) -> bool:
    """SIGKILL ``proc`` as soon as the simulator has received ``submits`` submits in all."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False  # finished before the kill point
        if sim.stats()["submits"]["requests"] >= submits:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            return True
        time.sleep(0.003)  # polling the stats, not waiting for luck
    raise AssertionError("the run never reached the kill point")


def test_kill_9_at_several_points_then_resume(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(numbered_manifest("crashy", JOBS, max_in_flight=20))
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END)) as sim:
        kills = 0
        for point in KILL_AFTER_SUBMITS:
            proc = start_run(tmp_path, sim.base_url)
            if kill_when(proc, sim, point):
                kills += 1
                assert proc.returncode == -signal.SIGKILL
        final = start_run(tmp_path, sim.base_url)
        _, err = final.communicate(timeout=120)
        stats = sim.stats()
    assert kills >= 4
    assert final.returncode in (0, 1), err.decode()
    assert b"Traceback" not in err

    db = sqlite3.connect(tmp_path / ".seedance" / "ledger.sqlite")
    rows = db.execute("SELECT key, state, task_id, output_path, sha256 FROM jobs WHERE campaign = 'crashy'").fetchall()
    by_body = stats["submits"]["by_body"]
    # no request body was ever submitted (and paid for) twice
    assert max(by_body.values()) == 1
    # every job has exactly one row, and ended: done, or unknown when a kill hit mid-submit
    assert len(rows) == JOBS and len({r[0] for r in rows}) == JOBS
    states = {r[1] for r in rows}
    assert states <= {"done", "unknown"}
    unknown = [r for r in rows if r[1] == "unknown"]
    assert len(unknown) <= 2 * kills
    # no task id lost: every task the service created is in the ledger, unless the kill
    # fell between the POST and the commit of its answer (then the job is unknown)
    done = [r for r in rows if r[1] == "done"]
    assert all(by_body.get(r[0]) == 1 and r[2] for r in done)
    assert len({r[2] for r in done}) == len(done)
    assert stats["tasks"]["total"] == sum(by_body.values())
    assert stats["tasks"]["total"] - len(done) <= len(unknown)
    # every done job's video is in place, whole, exactly once; no temp files left behind
    renders = tmp_path / "renders"
    assert sorted(p.relative_to(renders).as_posix() for p in renders.rglob("*.mp4")) == sorted(r[3] for r in done)
    assert not list(renders.rglob("*.part"))


FULL_DISK = """\
import resource, signal, sys
from seedance_batch.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
sys.exit(main(sys.argv[1:]))
"""
# Room past a fresh ledger's own size (it grows with each migration: measured, not guessed)
# for the first few jobs' rows and events, not for the run's.
ROOM = 22_000


def fresh_ledger_size(where: Path) -> int:
    """The largest file a fresh ledger of this version is made of (the limit applies per file)."""
    with open_ledger(where / "ledger.sqlite"):
        pass
    return max(p.stat().st_size for p in where.glob("ledger.sqlite*"))


def test_a_ledger_that_cannot_be_written_mid_run_is_one_line_and_resumable(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(numbered_manifest("crashy", JOBS, max_in_flight=20))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIDOT_", "SEEDANCE_"))}
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END)) as sim:
        env.update({"CI": "true", "APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": "sk-sim-full"})
        (tmp_path / "fresh").mkdir()
        limit = fresh_ledger_size(tmp_path / "fresh") + ROOM
        full = subprocess.run([sys.executable, "-c", FULL_DISK.format(limit=limit), "run", "m.yaml",
                               "--time-scale", str(SCALE)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert full.returncode == 5, full.stderr  # the ledger failed mid-run: EXIT_LEDGER, not "nothing submitted"
        assert "Traceback" not in full.stderr
        assert full.stderr.splitlines()[-1].startswith(".seedance/ledger.sqlite: cannot write the ledger: ")
        assert 0 < sim.stats()["submits"]["requests"] < JOBS  # it stopped mid-run
        again = start_run(tmp_path, sim.base_url)
        _, err = again.communicate(timeout=120)
        by_body = sim.stats()["submits"]["by_body"]
    assert again.returncode in (0, 1), err.decode()
    assert max(by_body.values()) == 1  # nothing paid twice
    db = sqlite3.connect(tmp_path / ".seedance" / "ledger.sqlite")
    assert {state for (state,) in db.execute("SELECT state FROM jobs")} <= {"done", "unknown"}
