"""The SQLite ledger's schema: the DDL of each named migration, and what a file must be to be read.

The names and their order are the backend-neutral list in :mod:`..migrations`; here is
what each one does in SQLite. Before anything is written, :func:`applied_migrations`
makes sure the file is a ledger (or an empty database: a new one): a database of
another program is refused and left as it was, byte for byte. :func:`check_shape`
refuses a ledger whose tables lack a column this version reads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from functools import cache

from ...errors import LedgerError, Location
from ...times import now_iso
from ..migrations import MIGRATIONS, Steps, known_migrations, shown_names

# The steps are exported by their migration names (the registry takes the function names).
__all__ = ["STEPS", "applied_migrations", "check_shape", "m001_jobs_and_events", "migrate"]

NOT_A_LEDGER_HINT = "point --state at another file, or move this one away"

migration: Steps[Callable[[sqlite3.Connection], None]] = Steps("sqlite")


@migration
def m001_jobs_and_events(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE jobs (
            campaign TEXT NOT NULL, key TEXT NOT NULL, label TEXT NOT NULL, shot TEXT NOT NULL,
            request TEXT NOT NULL, state TEXT NOT NULL, task_id TEXT, api_status TEXT,
            attempts INTEGER NOT NULL DEFAULT 0, credits INTEGER NOT NULL DEFAULT 0,
            cost_usd TEXT NOT NULL DEFAULT '0', error_class TEXT, error_message TEXT,
            file_url TEXT, output_path TEXT, size INTEGER, sha256 TEXT,
            created_at TEXT, submitting_at TEXT, submitted_at TEXT, finished_at TEXT,
            downloaded_at TEXT, updated_at TEXT,
            UNIQUE (campaign, key))"""
    )
    db.execute("CREATE INDEX jobs_task_id ON jobs (task_id)")
    db.execute(
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT, campaign TEXT NOT NULL, key TEXT NOT NULL,
            label TEXT NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL, state TEXT,
            task_id TEXT, detail TEXT NOT NULL DEFAULT '{}')"""
    )
    db.execute("CREATE INDEX events_campaign ON events (campaign, id)")


STEPS = migration.in_order()


def applied_migrations(db: sqlite3.Connection, where: Location) -> tuple[str, ...]:
    """The migrations this ledger has applied; ``()`` for an empty database (a new ledger).

    Only reads. Raises :class:`LedgerError` for a database that belongs to another
    program (tables of its own, or a ``_migrations`` table with none of ours) and for
    a ledger written by a newer seedance-batch. SQLite errors (not a database at all,
    cannot open) propagate as :class:`sqlite3.Error` for the caller to word.
    """
    objects = db.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
    if not objects:
        return ()
    tables = {name for kind, name in objects if kind == "table"}
    foreign = LedgerError(f"not a seedance-batch ledger (it holds tables of another program: "
                          f"{shown_names(tables or {name for _, name in objects})})",
                          location=where, hint=NOT_A_LEDGER_HINT)
    if "_migrations" not in tables:
        raise foreign
    try:
        applied = {str(row[0]) for row in db.execute("SELECT name FROM _migrations")}
    except sqlite3.OperationalError:  # a _migrations table of another shape: another program's
        raise foreign from None
    if not applied & set(MIGRATIONS) and (applied or tables != {"_migrations"}):
        # Another tool's _migrations table (a common name), or a bare one beside foreign tables.
        raise foreign
    return known_migrations(applied, where)


def check_shape(db: sqlite3.Connection, where: Location) -> None:
    """Refuse a ledger whose tables lack a column this version reads (a hand-edited or foreign file)."""
    for table, columns in _expected_shape().items():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        missing = [column for column in columns if column not in have]
        if missing:
            what = f"has no {table} table" if not have else f"its {table} table has no {', '.join(missing)}"
            raise LedgerError(f"not a ledger this version can read ({what})", location=where,
                              hint=NOT_A_LEDGER_HINT)


@cache
def _expected_shape() -> Mapping[str, tuple[str, ...]]:
    """Each table's columns as the migrations make them (built once in memory: never out of step)."""
    db = sqlite3.connect(":memory:")
    try:
        for _, step in STEPS:
            step(db)
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                               "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {table: tuple(row[1] for row in db.execute(f"PRAGMA table_info({table})")) for table in tables}
    finally:
        db.close()


def migrate(db: sqlite3.Connection, where: Location) -> None:
    """Apply the migrations this ledger lacks, in order, each in its own transaction.

    :func:`applied_migrations` runs first, so nothing is written to a file that is not a ledger.
    """
    applied = set(applied_migrations(db, where))
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, step in STEPS:
        if name in applied:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the write lock.
            if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone() is None:
                step(db)
                db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, now_iso()))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
