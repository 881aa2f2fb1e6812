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
__all__ = ["STEPS", "applied_migrations", "check_shape", "m001_jobs_and_events", "m010_claims", "m011_callback_tokens",
           "m012_decisions", "m013_media_checks", "migrate"]

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


@migration
def m012_decisions(db: sqlite3.Connection) -> None:
    # decision_history: every decision ever written, append-only (the review's audit trail);
    # decisions: the current one per job, replaced in the same transaction as its history line.
    columns = """campaign TEXT NOT NULL, key TEXT NOT NULL, label TEXT NOT NULL, combination TEXT NOT NULL,
            verdict TEXT NOT NULL, picked INTEGER NOT NULL, note TEXT NOT NULL, reviewer TEXT NOT NULL,
            at TEXT NOT NULL"""
    db.execute(f"CREATE TABLE decision_history (id INTEGER PRIMARY KEY AUTOINCREMENT, {columns})")
    db.execute("CREATE INDEX decision_history_campaign ON decision_history (campaign, id)")
    db.execute(f"CREATE TABLE decisions ({columns}, UNIQUE (campaign, key))")
    # One picked take per combination, whatever the code above it does: the database refuses a second.
    db.execute("CREATE UNIQUE INDEX decisions_one_pick ON decisions (campaign, combination) WHERE picked = 1")


@migration
def m011_callback_tokens(db: sqlite3.Connection) -> None:
    # One row per run that asked for callbacks: the SHA-256 of the secret in its callback path
    # (never the secret), so a `receive` elsewhere can tell the run's callbacks from strangers'.
    db.execute("""CREATE TABLE callback_tokens (digest TEXT PRIMARY KEY, campaign TEXT NOT NULL,
                  created_at TEXT NOT NULL, revoked_at TEXT)""")
    # A runner's cursor reads one kind of event (webhook) after an id: this keeps it an index range.
    db.execute("CREATE INDEX events_kind ON events (campaign, kind, id)")


@migration
def m013_media_checks(db: sqlite3.Connection) -> None:
    # The source media cache (..mediacache): one row per URL, keyed by the URL's sha256 (never the
    # URL: a signed one carries its token), with what its host said and when.
    db.execute("""CREATE TABLE media_checks (url_hash TEXT PRIMARY KEY, shown TEXT NOT NULL,
                  checked_at TEXT NOT NULL, content_type TEXT, size INTEGER, etag TEXT, last_modified TEXT)""")


@migration
def m010_claims(db: sqlite3.Connection) -> None:
    # Many runners (..claims): a job's owner (the runner that claimed or tracks it), the runners'
    # leases (unix seconds: a SQLite file is used on one machine), the account's submit schedule.
    db.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")
    db.execute("CREATE TABLE runners (id TEXT PRIMARY KEY, campaign TEXT NOT NULL, joined_at TEXT NOT NULL, "
               "lease_until REAL NOT NULL)")
    db.execute("CREATE TABLE limits (name TEXT PRIMARY KEY, next_at REAL NOT NULL)")
    db.execute("CREATE INDEX jobs_state ON jobs (state)")


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


def check_shape(db: sqlite3.Connection, where: Location, applied: tuple[str, ...] = MIGRATIONS) -> None:
    """Refuse a ledger whose tables lack a column this version reads (a hand-edited or foreign file).

    ``applied``: the migrations the ledger has (a read-only opening may read one lacking
    an :data:`~..migrations.ADDITIVE` migration): only their tables are expected.
    """
    for table, columns in _expected_shape(applied).items():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        missing = [column for column in columns if column not in have]
        if missing:
            what = f"has no {table} table" if not have else f"its {table} table has no {', '.join(missing)}"
            raise LedgerError(f"not a ledger this version can read ({what})", location=where,
                              hint=NOT_A_LEDGER_HINT)


@cache
def _expected_shape(applied: tuple[str, ...]) -> Mapping[str, tuple[str, ...]]:
    """Each table's columns as the ``applied`` migrations make them (built in memory: never out of step)."""
    db = sqlite3.connect(":memory:")
    try:
        for name, step in STEPS:
            if name in applied:
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
        # Into the database file at once: the write-ahead log does not grow by a migration at a
        # time (a new ledger's would fill it before its first job), and starts empty for the run.
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
