"""The SQLite ledger: its file, its migrations, its money, and a ledger an older version wrote.

What every backend promises is tests/test_ledger_contract.py; here is what only the
SQLite file has. ``tests/data/ledger-86a5b1b.sqlite`` was written by the session's first
commit (86a5b1b): a crashed submit, a rejected job and a released one seeded through
that version's own ledger, then ``seedance-batch run manifests/ad-localization.yaml
--simulate`` (20 done, 1 failed, 1 unknown; 98 events). It must open unchanged.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

import seedance_batch
from cli_support import Project
from seedance_batch import ledger as ledger_package
from seedance_batch.errors import LedgerError
from seedance_batch.ledger import JobState, Ledger, default_path, open_ledger
from seedance_batch.ledger import migrations as ledger_migrations
from seedance_batch.ledger.sqlite import schema as sqlite_schema

REQUEST = {"model": "seedance-2", "input": {"prompt": "a lighthouse", "duration": 5, "resolution": "720p"}}
OLD_LEDGER = Path(__file__).parent / "data" / "ledger-86a5b1b.sqlite"
MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"


def begin(led: Ledger, key: str = "k1", label: str = "hero/en") -> None:
    led.begin_submit(campaign="c", key=key, label=label, shot="hero", request=REQUEST,
                     credits=200, cost_usd=Decimal("1.00"), output_path=f"c/hero/{label}.mp4")


def test_the_packages_surface_is_its_all_and_nothing_outside_imports_a_backend() -> None:
    exported = set(ledger_package.__all__)
    assert all(hasattr(ledger_package, name) for name in exported)
    own = {name for name, value in vars(ledger_package).items() if not name.startswith("_")
           and not inspect.ismodule(value) and getattr(value, "__module__", "").startswith("seedance_batch.ledger")}
    assert own <= exported, own - exported
    package = Path(seedance_batch.__file__).parent
    for source in package.rglob("*.py"):
        if "ledger" in source.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert "ledger.sqlite" not in node.module, f"{source} imports a backend: {node.module}"


def test_default_path_prefers_flag_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEEDANCE_STATE", raising=False)
    assert default_path(None) == Path(".seedance/ledger.sqlite")
    monkeypatch.setenv("SEEDANCE_STATE", "/x/env.sqlite")
    assert default_path(None) == Path("/x/env.sqlite")
    assert default_path("flag.sqlite") == Path("flag.sqlite")


def test_a_sqlite_url_names_the_same_file_as_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_ledger(f"sqlite:///{tmp_path}/a.sqlite") as by_url:
        begin(by_url)
    with open_ledger("sqlite:///b.sqlite") as relative:
        begin(relative)
    assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == ["a.sqlite", "b.sqlite"]
    looking = open_ledger(tmp_path / "a.sqlite", read_only=True)
    assert looking is not None and looking.record("c", "k1") is not None
    looking.close()


def test_open_creates_folder_and_uses_wal_and_records_each_migration(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "ledger.sqlite"
    open_ledger(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # in the order applied (rowid), not by name: a migration's number is its issue's, not its place
    assert [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY rowid")] == list(ledger_migrations.MIGRATIONS)


def test_the_sqlite_steps_are_the_backend_neutral_names_in_order() -> None:
    assert tuple(name for name, _ in sqlite_schema.STEPS) == ledger_migrations.MIGRATIONS
    steps: ledger_migrations.Steps[object] = ledger_migrations.Steps("test")  # type: ignore[type-var]
    steps(sqlite_schema.m001_jobs_and_events)
    steps(lambda: None)  # a step no migration is named after
    with pytest.raises(RuntimeError, match="test ledger migrations"):
        steps.in_order()


def test_a_write_commits_before_it_returns(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.sqlite") as led:
        begin(led)
        other = sqlite3.connect(tmp_path / "l.sqlite")  # another connection sees it at once
        assert other.execute("SELECT state, attempts FROM jobs").fetchone() == ("submitting", 1)
        led.submitted("c", "k1", "task-1", "not_started")
        assert other.execute("SELECT state, task_id FROM jobs").fetchone() == ("submitted", "task-1")


def test_money_is_stored_as_text_never_a_float(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.sqlite") as led:
        led.begin_submit(campaign="c", key="k", label="l", shot="s", request=REQUEST, credits=3,
                         cost_usd=Decimal("0.015"), output_path=None)
    raw = sqlite3.connect(tmp_path / "l.sqlite").execute("SELECT typeof(cost_usd), cost_usd FROM jobs").fetchone()
    assert raw == ("text", "0.015")


def test_ledger_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    open_ledger(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', 'now')")
    db.commit()
    for opener in (open_ledger, lambda p: open_ledger(p, read_only=True)):
        with pytest.raises(LedgerError) as caught:
            opener(path)
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
    with open_ledger(path) as first, open_ledger(path) as second:
        begin(first)
        assert second.record("c", "k1").state is JobState.SUBMITTING
    assert sqlite3.connect(path).execute("SELECT count(*) FROM _migrations").fetchone() == (
        len(ledger_migrations.MIGRATIONS),)


# --- a ledger written by the session's first commit -----------------------------------------

def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(path: Path) -> dict[str, tuple[str, str | None, int]]:
    # immutable: a committed fixture is read without locks, so no -shm or -wal appears beside it
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        return {label: (state, task_id, attempts)
                for label, state, task_id, attempts in db.execute("SELECT label, state, task_id, attempts FROM jobs")}
    finally:
        db.close()


@pytest.fixture
def old(project: Project) -> Project:
    """A project with the manifest and, as its ledger, a copy of the one the first commit wrote."""
    folder = project.path
    for name in ("ad-localization.yaml", "locales.csv"):
        shutil.copy(MANIFESTS / name, folder / name)
    (folder / ".seedance").mkdir()
    shutil.copy(OLD_LEDGER, folder / ".seedance" / "ledger.sqlite")
    return project


def test_the_old_ledger_is_the_fixture_it_says() -> None:
    rows = _rows(OLD_LEDGER)
    states = sorted(state for state, _, _ in rows.values())
    assert states == ["done"] * 20 + ["failed", "unknown"]
    assert rows["hero/de-DE/9:16"][0::2] == ("done", 2)  # released once, then rendered


def test_status_and_plan_read_the_old_ledger_and_leave_it_as_it_was(old: Project) -> None:
    ledger = old.path / ".seedance" / "ledger.sqlite"
    before = _sha(ledger)
    status = json.loads(old.run("status", "ad-localization.yaml", "--json").assert_success().out)
    assert status["totals"]["done"] == 20
    assert (status["totals"]["failed"], status["totals"]["unknown"], status["spent_usd"]) == (1, 1, "27.440")
    plan = json.loads(old.run("plan", "ad-localization.yaml", "--json").assert_success().out)
    assert plan["counts"] == {"new": 0, "changed": 0, "in-flight": 0, "done": 20, "failed": 1, "unknown": 1}
    assert (plan["total_usd"], plan["spent_usd"]) == (0, 27.44)
    assert _sha(ledger) == before


def test_a_run_over_the_old_ledger_submits_nothing_and_done_stays_done(old: Project) -> None:
    ledger = old.path / ".seedance" / "ledger.sqlite"
    before = _rows(ledger)
    outcome = old.run("run", "ad-localization.yaml", "--simulate").assert_failed(1)
    assert "submitted 0 this run" in outcome.out
    assert _rows(ledger) == before
    db = sqlite3.connect(ledger)
    applied = db.execute("SELECT name, applied_at FROM _migrations ORDER BY rowid").fetchall()
    # the old migration is not applied again; the ones added since are, after it, in order
    assert applied[0] == ("m001_jobs_and_events", "2026-12-01T21:02:22.868754+00:00")
    assert tuple(name for name, _ in applied) == ledger_migrations.MIGRATIONS


def test_the_old_ledgers_failed_and_unknown_jobs_are_resubmitted_when_asked(old: Project) -> None:
    ledger = old.path / ".seedance" / "ledger.sqlite"
    before = _rows(ledger)
    outcome = old.run("run", "ad-localization.yaml", "--simulate", "--retry-failed",
                      "--resubmit-unknown").assert_success()
    assert "22 done; submitted 2 this run" in outcome.out
    after = _rows(ledger)
    again = {label for label, (state, _, _) in before.items() if state != "done"}
    assert again == {"hero/en-US/9:16", "hero/en-US/16:9"}
    assert {label: row for label, row in after.items() if label not in again} == {
        label: row for label, row in before.items() if label not in again}
    assert all(after[label][0] == "done" and after[label][2] == 2 for label in again)
