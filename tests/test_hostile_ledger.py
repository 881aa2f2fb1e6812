"""Hostile ledgers (issue 8): two names for one file, a looking command over a live
run, a database of another program, a read-only file system, rows this version
cannot read, and a task id the ledger would have dropped.

Real SQLite files, real subprocesses (``python -m seedance_batch ...``), a real run
against the simulator over loopback; the read-only file system is a real read-only
bind mount in a private mount namespace (skipped where that is not permitted).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest

from cli_support import run_cli
from engine_support import numbered_manifest
from seedance_batch.cli import main
from seedance_batch.errors import LedgerError
from seedance_batch.ledger import JobRecord, JobState, open_ledger
from seedance_batch.ledger.records import DERIVED_FIELDS
from seedance_batch.pipeline import load_plan
from seedance_batch.safetext import one_line
from seedance_batch.simulator import SimulatorConfig, run_simulator
from seedance_batch.simulator.config import Latency

CAMPAIGN = "locky"
NOT_A_LEDGER_HINT = "point --state at another file, or move this one away"
BAD_ROW_HINT = ("upgrade seedance-batch if a newer version wrote it, or repair or remove that row "
                "(nothing was changed)")
BUSY = "another seedance-batch run is using this ledger; wait for it to finish, or give this run its own --state"

# A second process that holds a ledger the way a run does: it opens it, takes the run
# lock and records one job as `submitting`, says so, then waits for a line on stdin
# before committing the task id the service "answered" (as the engine does).
HOLDER = """\
import json, sys
from decimal import Decimal
from seedance_batch.ledger import open_ledger
path, job = sys.argv[1], json.loads(sys.argv[2])
with open_ledger(path) as ledger:
    ledger.acquire_run_lock()
    ledger.begin_submit(campaign=job["campaign"], key=job["key"], label=job["label"], shot=job["shot"],
                        request=job["request"], credits=28, cost_usd=Decimal("0.28"), output_path=None)
    print("held", flush=True)
    sys.stdin.readline()
    print("moved" if ledger.submitted(job["campaign"], job["key"], "task-live-1", "not_started") else "dropped",
          flush=True)
"""




@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "m.yaml").write_text(numbered_manifest(CAMPAIGN, 3, max_in_flight=3))
    return tmp_path


def manifest_jobs(project: Path) -> list[dict[str, object]]:
    """The manifest's jobs as the ledger keys them (so `status` matches rows to them)."""
    _, plan = load_plan(project / "m.yaml", None)
    return [{"campaign": p.priced.job.campaign, "key": p.priced.job.key, "label": p.label,
             "shot": p.priced.job.shot, "request": dict(p.priced.job.request)} for p in plan.jobs]


def seed(path: Path, jobs: list[dict[str, object]], *, done: int = 0, submitting: int = 0) -> None:
    """A ledger with ``done`` finished jobs and then ``submitting`` crashed submits, closed cleanly."""
    with open_ledger(path) as ledger:
        for index, job in enumerate(jobs[:done + submitting]):
            ledger.begin_submit(**job, credits=28, cost_usd=Decimal("0.28"), output_path=f"{job['label']}.mp4")
            if index < done:
                ledger.submitted(job["campaign"], job["key"], f"task-{index}", "not_started")
                ledger.finished(job["campaign"], job["key"], "http://files/v.mp4")
                ledger.downloaded(job["campaign"], job["key"], f"{job['label']}.mp4", 10, "ab" * 32)


def rows(path: Path) -> list[tuple[object, ...]]:
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return db.execute("SELECT label, state, task_id FROM jobs ORDER BY rowid").fetchall()
    finally:
        db.close()


def event_kinds(path: Path) -> list[str]:
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return [kind for (kind,) in db.execute("SELECT kind FROM events ORDER BY id")]
    finally:
        db.close()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start_holder(path: Path, job: dict[str, object]) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), json.dumps(job)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n", holder.stderr.read() if holder.stderr else ""
    return holder


def finish_holder(holder: subprocess.Popen[str]) -> str:
    out, err = holder.communicate("go\n", timeout=30)
    assert holder.returncode == 0, err
    return out


# --- one run per ledger file, whatever its name ---------------------------------------------


def test_two_runs_through_a_symlink_the_second_is_refused_and_nothing_is_paid_twice(tmp_path: Path) -> None:
    scale = 0.1  # 6 submits a simulated minute: one a second, so the first run holds the ledger for ~40 s
    (tmp_path / "m.yaml").write_text(numbered_manifest(CAMPAIGN, 40, max_in_flight=40))
    (tmp_path / ".seedance").mkdir()
    (tmp_path / "link.sqlite").symlink_to(tmp_path / ".seedance" / "ledger.sqlite")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIDOT_", "SEEDANCE_"))}
    # Renders that never finish meanwhile: the first run is still submitting and tracking when the second starts.
    with run_simulator(SimulatorConfig(time_scale=scale, latency=Latency(queue_seconds=1e6))) as sim:
        env.update({"CI": "true", "APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": "sk-sim-locks"})
        first = subprocess.Popen([sys.executable, "-m", "seedance_batch", "run", "m.yaml", "--time-scale",
                                  str(scale)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while sim.stats()["submits"]["requests"] < 1:  # it has the lock once it submits
                assert first.poll() is None, "the first run ended before submitting anything"
                assert time.monotonic() < deadline, "the first run never submitted"
                time.sleep(0.005)  # polling the simulator's count, not waiting for luck
            second = subprocess.run([sys.executable, "-m", "seedance_batch", "run", "m.yaml", "--state",
                                     "link.sqlite", "--time-scale", str(scale)], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=60)
            assert first.poll() is None, "the first run ended before the second tried: nothing was shown"
            by_body = sim.stats()["submits"]["by_body"]
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=30)
    assert (second.returncode, second.stderr) == (2, f"link.sqlite: {BUSY}\n")
    assert max(by_body.values()) == 1  # no job paid for twice


def test_a_hard_link_a_symlink_and_another_relative_path_meet_the_same_lock(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = project / "state" / "l.sqlite"
    seed(path, [])
    (project / "hard.sqlite").hardlink_to(path)
    (project / "soft.sqlite").symlink_to(path)
    (project / "state" / "sub").mkdir()
    job = manifest_jobs(project)[0]
    holder = start_holder(path, job)
    monkeypatch.chdir(project)
    for name in ("hard.sqlite", "soft.sqlite", "state/sub/../l.sqlite"):
        with open_ledger(name) as other, pytest.raises(LedgerError) as caught:
            other.acquire_run_lock()
        assert str(caught.value) == f"{name}: {BUSY}"
    # SQLite's own locking is untouched by the run lock (flock and POSIX locks are separate):
    # this process writes through the hard link while the holder keeps the run lock...
    with open_ledger("hard.sqlite") as other:
        other.note(CAMPAIGN, str(job["key"]), "looked")
    # ...and the holder still writes its task id after that.
    assert finish_holder(holder) == "moved\n"
    assert rows(path) == [(job["label"], "submitted", "task-live-1")]
    with open_ledger("hard.sqlite") as other:
        other.acquire_run_lock()  # free again once the holder is gone


def test_releasing_the_run_lock_keeps_sqlites_own_locks_of_this_process(tmp_path: Path) -> None:
    """Closing any descriptor of the database file drops this process's POSIX locks on it,
    SQLite's included: the run lock must never do that under a live connection."""
    locks = Path("/proc/locks")
    if not locks.exists():
        pytest.skip("needs /proc/locks (Linux) to see SQLite's locks")
    path = tmp_path / "l.sqlite"
    seed(path, [])
    inode = os.stat(path).st_ino

    def sqlite_holds_a_lock() -> bool:
        return any(f" {os.getpid()} " in line and f":{inode} " in line and "POSIX" in line
                   for line in locks.read_text().splitlines())

    with open_ledger(path) as reader:
        reader.records(CAMPAIGN)  # a WAL connection keeps a SHARED lock on the file from here on
        assert sqlite_holds_a_lock()
        with open_ledger(tmp_path / "l.sqlite") as runner:
            runner.acquire_run_lock()
            runner.release_run_lock()
        assert sqlite_holds_a_lock()


# --- the looking commands never write, never recover ------------------------------------------


def test_status_through_a_symlink_leaves_a_live_runs_submit_alone_and_its_task_id_lands(project: Path) -> None:
    path = project / ".seedance" / "ledger.sqlite"
    seed(path, [])
    (project / "link.sqlite").symlink_to(path)
    job = manifest_jobs(project)[0]
    holder = start_holder(path, job)
    shown = run_cli(project, "status", "m.yaml", "--state", "link.sqlite", "--json")
    assert shown.code == 0, shown.err
    first = json.loads(shown.out)["jobs"][0]
    assert (first["label"], first["state"]) == (job["label"], "submitting")
    assert rows(path) == [(job["label"], "submitting", None)]  # not made unknown behind the run's back
    assert finish_holder(holder) == "moved\n"
    assert rows(path) == [(job["label"], "submitted", "task-live-1")]
    assert event_kinds(path) == ["submitting", "submitted"]


@pytest.mark.parametrize("command", ["status", "plan", "report"])
def test_a_looking_command_on_a_crashed_ledger_changes_nothing(project: Path, command: str) -> None:
    path = project / ".seedance" / "ledger.sqlite"
    seed(path, manifest_jobs(project), done=1, submitting=1)
    before = sha(path)
    done = run_cli(project, command, "m.yaml")
    assert done.code == 0, done.err
    assert sha(path) == before
    wal = Path(f"{path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert [state for _, state, _ in rows(path)] == ["done", "submitting"]  # the next run recovers it


# --- a file that is not a ledger ------------------------------------------------------------


def app_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO users (name) VALUES ('ada')")
    db.commit()
    db.close()


@pytest.mark.parametrize("command", [("status",), ("plan",), ("report",), ("run", "--simulate")])
def test_another_programs_database_is_refused_untouched(project: Path, command: tuple[str, ...]) -> None:
    app_database(project / "app.sqlite")
    before, files = sha(project / "app.sqlite"), sorted(os.listdir(project))
    done = run_cli(project, command[0], "m.yaml", *command[1:], "--state", "app.sqlite")
    assert (done.code, done.err) == (2, (
        "app.sqlite: not a seedance-batch ledger (it holds tables of another program: users); "
        f"{NOT_A_LEDGER_HINT}\n"))
    assert sha(project / "app.sqlite") == before
    assert sorted(os.listdir(project)) == files  # no -wal, -shm, .lock or reports beside it


def test_a_database_with_a_migrations_table_of_its_own_is_not_taken_for_a_newer_ledger(tmp_path: Path) -> None:
    path = tmp_path / "tool.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    db.execute("INSERT INTO _migrations VALUES ('0001_initial', 'then')")
    db.execute("CREATE TABLE notes (body TEXT)")
    db.commit()
    db.close()
    before = sha(path)
    for opener in (open_ledger, partial(open_ledger, read_only=True)):
        with pytest.raises(LedgerError) as caught:
            opener(path)
        assert str(caught.value) == (f"{path}: not a seedance-batch ledger (it holds tables of another program: "
                                     f"_migrations, notes); {NOT_A_LEDGER_HINT}")
    assert sha(path) == before


# --- rows this version cannot read ----------------------------------------------------------

LABEL = "s/v00"


@pytest.mark.parametrize(("damage", "message"), [
    ("UPDATE jobs SET state = 'exploded'", f"job {LABEL}: cannot read this job's row: "
     f"state exploded is not one this version knows; {BAD_ROW_HINT}"),
    ("UPDATE jobs SET request = '{not json'", f"job {LABEL}: cannot read this job's row: "
     f"its request is not valid JSON; {BAD_ROW_HINT}"),
    ("UPDATE jobs SET request = '[1, 2]'", f"job {LABEL}: cannot read this job's row: "
     f"its request is not a JSON object; {BAD_ROW_HINT}"),
    ("UPDATE jobs SET cost_usd = '0,28'", f"job {LABEL}: cannot read this job's row: "
     f"cost_usd 0,28 is not a decimal amount; {BAD_ROW_HINT}"),
    ("UPDATE jobs SET cost_usd = '-5'", f"job {LABEL}: cannot read this job's row: "
     f"cost_usd -5 is not an amount of money; {BAD_ROW_HINT}"),
    ("UPDATE jobs SET credits = 'lots'", f"job {LABEL}: cannot read this job's row: "
     f"credits is lots, not a count; {BAD_ROW_HINT}"),
    ("UPDATE jobs SET task_id = x'00ff'", f"job {LABEL}: cannot read this job's row: "
     f"task_id is b'\\x00\\xff', not text; {BAD_ROW_HINT}"),
    ("UPDATE jobs SET state = 'x', label = 'a' || char(27) || '[2J' || char(10) || 'b'",
     f"job {one_line(chr(97) + chr(27) + '[2J' + chr(10) + 'b')}: cannot read this job's row: "
     f"state x is not one this version knows; {BAD_ROW_HINT}"),
    ("ALTER TABLE jobs DROP COLUMN sha256",
     f"not a ledger this version can read (its jobs table has no sha256); {NOT_A_LEDGER_HINT}"),
    ("DROP TABLE events", f"not a ledger this version can read (has no events table); {NOT_A_LEDGER_HINT}"),
])
def test_a_row_this_version_cannot_read_is_one_line_naming_the_ledger(
        project: Path, damage: str, message: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = project / "l.sqlite"
    seed(path, manifest_jobs(project), done=1)
    db = sqlite3.connect(path)
    db.execute(damage)
    db.commit()
    db.close()
    monkeypatch.chdir(project)
    code = main(["status", "m.yaml", "--state", "l.sqlite"])  # the CLI's own entry point, in this process
    assert (code, capsys.readouterr().err) == (2, f"l.sqlite: {message}\n")


def test_a_run_over_an_unreadable_row_stops_before_submitting(project: Path) -> None:
    path = project / "l.sqlite"
    seed(path, manifest_jobs(project), done=1)
    db = sqlite3.connect(path)
    db.execute("UPDATE jobs SET cost_usd = 'NaN'")
    db.commit()
    db.close()
    done = run_cli(project, "run", "m.yaml", "--simulate", "--state", "l.sqlite")
    assert (done.code, done.err) == (2, f"l.sqlite: job {LABEL}: cannot read this job's row: "
                                                 f"cost_usd NaN is not an amount of money; {BAD_ROW_HINT}\n")
    assert not (project / "renders").exists()


def test_rows_are_read_in_the_records_field_order() -> None:
    from dataclasses import fields

    from seedance_batch.ledger.sqlite import rows

    # rows become JobRecord(*values); the fields after them are read from the audit trail (refunds)
    assert tuple(f.name for f in fields(JobRecord)) == (*rows.COLUMNS, *DERIVED_FIELDS)


def test_an_unreadable_event_is_one_error_naming_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with open_ledger(path) as ledger:
        ledger.note("c", "k", "looked")
    db = sqlite3.connect(path)
    db.execute("UPDATE events SET detail = '{broken'")
    db.commit()
    db.close()
    with open_ledger(path) as ledger, pytest.raises(LedgerError) as caught:
        ledger.events("c")
    assert str(caught.value) == (f"{path}: cannot read event 1 of the audit trail (not the shape this version "
                                 f"writes); {BAD_ROW_HINT}")


# --- a task id is never dropped ---------------------------------------------------------------


def test_a_task_id_for_a_row_made_unknown_meanwhile_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    job = {"campaign": "c", "key": "k1", "label": "hero/en", "shot": "hero", "request": {"model": "m"}}
    with open_ledger(path) as run, open_ledger(path) as elsewhere:
        run.begin_submit(**job, credits=1, cost_usd=Decimal("0.01"), output_path=None)
        assert [r.key for r in elsewhere.recover()] == ["k1"]  # e.g. an older `status` by another name
        assert run.submitted("c", "k1", "task-7", "not_started")  # the task exists after all
        rec = run.record("c", "k1")
        assert (rec.state, rec.task_id, rec.error_class, rec.error_message) == (JobState.SUBMITTED, "task-7", None,
                                                                                 None)
        assert run.events("c")[-1].detail == {"api_status": "not_started", "error_class": None,
                                              "error_message": None, "was": "unknown"}
        assert not run.submitted("c", "k1", "task-7", "not_started")  # a repeat: nothing to add


@pytest.mark.parametrize(("begin", "why"), [
    (True, "done with task task-1"),
    (False, "missing"),
])
def test_a_refused_task_id_is_recorded_then_loud(tmp_path: Path, begin: bool, why: str) -> None:
    job = {"campaign": "c", "key": "k1", "label": "hero/en", "shot": "hero", "request": {"model": "m"}}
    with open_ledger(tmp_path / "l.sqlite") as ledger:
        if begin:
            ledger.begin_submit(**job, credits=1, cost_usd=Decimal("0.01"), output_path=None)
            ledger.submitted("c", "k1", "task-1", None)
            ledger.finished("c", "k1", "u")
            ledger.downloaded("c", "k1", "p", 1, "0" * 64)
        with pytest.raises(LedgerError) as caught:
            ledger.submitted("c", "k1", "task-2", "not_started")
        where = f"{tmp_path / 'l.sqlite'}: job hero/en" if begin else f"{tmp_path / 'l.sqlite'}"
        assert str(caught.value) == (
            f"{where}: task task-2 cannot go on this job's row (it is {why}, not submitting); the task id is kept "
            "in the ledger's events (task_refused); check that task in APIDot's dashboard before submitting "
            "this job again")
        last = ledger.events("c")[-1]
        assert (last.kind, last.task_id) == ("task_refused", "task-2")
        if begin:
            assert ledger.record("c", "k1").task_id == "task-1"


# --- a ledger on a read-only file system --------------------------------------------------------


def read_only_mount_works(folder: Path) -> str | None:
    """None if this machine lets us bind-mount ``folder`` read-only in a private namespace, else why not."""
    if shutil.which("unshare") is None:
        return "needs unshare(1)"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind '{folder}' '{folder}' && "
                            f"mount -o remount,ro,bind '{folder}' '{folder}' && ! touch '{folder}/probe'"],
                           capture_output=True, text=True, timeout=30)
    return None if probe.returncode == 0 else f"cannot bind-mount read-only here: {probe.stderr.strip()}"


def on_read_only(folder: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``seedance-batch ARGS`` with ``folder`` mounted read-only (for that process only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIDOT_", "SEEDANCE_"))}
    env["CI"] = "true"
    command = " ".join(f"'{a}'" for a in (sys.executable, "-m", "seedance_batch", *args))
    return subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind '{folder}' '{folder}' && "
                           f"mount -o remount,ro,bind '{folder}' '{folder}' && exec {command}"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def read_only_ledger(project: Path) -> Path:
    folder = project / "archive"
    folder.mkdir()
    why = read_only_mount_works(folder)
    if why:
        pytest.skip(why)
    seed(folder / "ledger.sqlite", manifest_jobs(project), done=2)
    return folder / "ledger.sqlite"


def test_status_reads_a_ledger_on_a_read_only_file_system(project: Path, read_only_ledger: Path) -> None:
    assert not Path(f"{read_only_ledger}-shm").exists()  # closed cleanly: SQLite would have to create it
    shown = on_read_only(read_only_ledger.parent, project, "status", "m.yaml", "--state", str(read_only_ledger),
                         "--json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["totals"] == {"done": 2, "planned": 1}
    assert [r["task_id"] for r in view["jobs"]] == ["task-0", "task-1", None]


def test_a_read_only_ledger_with_its_wal_and_shm_is_read_with_what_the_wal_holds(
        project: Path, read_only_ledger: Path) -> None:
    # A writer killed mid-campaign leaves its last commits in the -wal file, with the -shm beside it.
    writer = subprocess.run([sys.executable, "-c", (
        "import os, signal, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute(\"UPDATE jobs SET task_id = 'task-from-the-wal' WHERE task_id = 'task-0'\")\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"), str(read_only_ledger)], capture_output=True, timeout=30)
    assert writer.returncode == -signal.SIGKILL
    assert Path(f"{read_only_ledger}-wal").stat().st_size > 0
    shown = on_read_only(read_only_ledger.parent, project, "status", "m.yaml", "--state", str(read_only_ledger),
                         "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["jobs"][0]["task_id"] == "task-from-the-wal"
    # Without the -shm, SQLite cannot read that WAL read-only: refused, not shown stale.
    Path(f"{read_only_ledger}-shm").unlink()
    shown = on_read_only(read_only_ledger.parent, project, "status", "m.yaml", "--state", str(read_only_ledger))
    assert (shown.returncode, shown.stderr) == (2, (
        f"{read_only_ledger}: cannot read the ledger here: its write-ahead log ledger.sqlite-wal holds changes "
        "not yet in the file, and SQLite cannot read them in a read-only folder; copy the ledger with its -wal "
        "file to a writable folder and pass that with --state\n"))


def test_a_run_on_a_read_only_ledger_is_one_line_and_exit_2(project: Path, read_only_ledger: Path) -> None:
    done = on_read_only(read_only_ledger.parent, project, "run", "m.yaml", "--simulate", "--state",
                        str(read_only_ledger))
    assert (done.returncode, done.stderr) == (2, (
        f"{read_only_ledger}: cannot write the ledger: it is on a read-only file system; a run records every "
        "submit there: pass a writable --state (status, plan and report can read this one as it is)\n"))
