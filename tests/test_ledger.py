"""The ledger: a real SQLite file, its transitions, recovery, migrations and money."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from seedance_batch.errors import LedgerError
from seedance_batch.ledger import JobState, Ledger, default_path, open_ledger
from seedance_batch.ledger import migrations as ledger_schema

REQUEST = {"model": "seedance-2", "input": {"prompt": "a lighthouse", "duration": 5, "resolution": "720p"}}


def begin(led: Ledger, key: str = "k1", label: str = "hero/en") -> None:
    led.begin_submit(campaign="c", key=key, label=label, shot="hero", request=REQUEST,
                     credits=200, cost_usd=Decimal("1.00"), output_path=f"c/hero/{label}.mp4")


@pytest.fixture
def led(tmp_path: Path) -> Ledger:
    with open_ledger(tmp_path / "state" / "ledger.sqlite") as opened:
        yield opened


def test_default_path_prefers_flag_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEEDANCE_STATE", raising=False)
    assert default_path(None) == Path(".seedance/ledger.sqlite")
    monkeypatch.setenv("SEEDANCE_STATE", "/x/env.sqlite")
    assert default_path(None) == Path("/x/env.sqlite")
    assert default_path("flag.sqlite") == Path("flag.sqlite")


def test_open_creates_folder_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "ledger.sqlite"
    open_ledger(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = [r[0] for r in db.execute("SELECT name FROM _migrations")]
    assert names == [name for name, _ in ledger_schema.MIGRATIONS]


def test_full_life_of_a_job_is_committed_and_audited(led: Ledger, tmp_path: Path) -> None:
    begin(led)
    # committed before the POST: a second connection sees it
    other = sqlite3.connect(led.path)
    assert other.execute("SELECT state, attempts FROM jobs").fetchone() == ("submitting", 1)
    assert led.submitted("c", "k1", "task-1", "not_started")
    assert other.execute("SELECT state, task_id FROM jobs").fetchone() == ("submitted", "task-1")
    assert led.status_seen("c", "k1", "running")
    assert not led.status_seen("c", "k1", "running")  # unchanged: no event
    assert led.finished("c", "k1", "http://files/v.mp4")
    assert led.downloaded("c", "k1", "c/hero/hero/en.mp4", 1234, "ab" * 32)
    rec = led.record("c", "k1")
    assert rec is not None
    assert (rec.state, rec.task_id, rec.size, rec.sha256) == (JobState.DONE, "task-1", 1234, "ab" * 32)
    assert rec.cost_usd == Decimal("1.00") and rec.credits == 200
    assert rec.submitted_at and rec.finished_at and rec.downloaded_at
    kinds = [e.kind for e in led.events("c")]
    assert kinds == ["submitting", "submitted", "status", "finished", "downloaded"]
    assert led.by_task_id("task-1") == rec


def test_transitions_never_move_a_job_backwards(led: Ledger) -> None:
    begin(led)
    led.submitted("c", "k1", "task-1", "not_started")
    led.finished("c", "k1", "u")
    led.downloaded("c", "k1", "p", 1, "0" * 64)
    assert not led.finished("c", "k1", "u2", source="webhook")  # a late duplicate
    assert not led.failed("c", "k1", "task_failed", "late")
    with pytest.raises(LedgerError, match="task task-2 cannot go on this job's row"):
        led.submitted("c", "k1", "task-2", None)  # a second task is never dropped silently
    assert led.record("c", "k1").state is JobState.DONE


def test_release_then_resubmit_counts_attempts(led: Ledger) -> None:
    begin(led)
    assert led.release("c", "k1", "rate_limited", "429")
    assert led.record("c", "k1").state is JobState.PENDING
    begin(led)
    rec = led.record("c", "k1")
    assert (rec.state, rec.attempts, rec.error_class) == (JobState.SUBMITTING, 2, None)


def test_recover_turns_submitting_into_unknown(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with open_ledger(path) as led:
        begin(led, "k1", "a")
        begin(led, "k2", "b")
        led.submitted("c", "k2", "task-2", None)
    # "crash": reopen
    with open_ledger(path) as led:
        recovered = led.recover()
        assert [r.key for r in recovered] == ["k1"]
        assert recovered[0].state is JobState.UNKNOWN
        assert led.record("c", "k2").state is JobState.SUBMITTED
        assert led.events("c")[-1].kind == "recovered"
        assert led.recover() == []


def test_records_oldest_first_and_money_is_exact(led: Ledger) -> None:
    for index in range(3):
        led.begin_submit(campaign="c", key=f"k{index}", label=f"l{index}", shot="s", request=REQUEST,
                         credits=3, cost_usd=Decimal("0.015"), output_path=None)
    begin(led, "k0", "l0")  # an update keeps its place
    assert [r.key for r in led.records("c")] == ["k0", "k1", "k2"]
    assert sum(r.cost_usd for r in led.records("c")) == Decimal("1.030")  # k0 re-priced at 1.00
    raw = sqlite3.connect(led.path).execute("SELECT typeof(cost_usd) FROM jobs LIMIT 1").fetchone()[0]
    assert raw == "text"
    assert led.records("other") == []


def test_ledger_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    open_ledger(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', 'now')")
    db.commit()
    with pytest.raises(LedgerError) as caught:
        open_ledger(path)
    assert str(caught.value) == (
        f"{path}: this ledger was written by a newer seedance-batch (schema m999_from_the_future); "
        "upgrade seedance-batch (pip install -U seedance-batch), or use another --state file"
    )


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello " * 1000)
    with pytest.raises(LedgerError, match="not a seedance-batch ledger"):
        open_ledger(path)


def test_two_connections_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    first, second = open_ledger(path), open_ledger(path)
    begin(first)
    assert second.record("c", "k1").state is JobState.SUBMITTING
    first.close()
    second.close()


def test_one_run_at_a_time_and_no_recovery_under_a_live_run(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    running, other = open_ledger(path), open_ledger(path)
    running.acquire_run_lock()
    begin(running)  # a live submit in the other "process"
    with pytest.raises(LedgerError, match="another seedance-batch run is using this ledger"):
        other.acquire_run_lock()
    assert other.recover() == []  # its submitting row is live, not crashed
    assert other.record("c", "k1").state is JobState.SUBMITTING
    running.close()
    assert [r.key for r in other.recover()] == ["k1"]
    other.close()
