"""The ledger's schema: ordered, named migrations recorded in a ``_migrations`` table.

Shaped after simonw/llm's ``migrations.py``: each migration is a function, applied
once, in order, in its own transaction, and its name recorded. A ledger that lists
a migration this version does not know was written by a newer seedance-batch and
is refused with a clear message rather than misread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone

from .errors import LedgerError, Location

__all__ = ["MIGRATIONS", "migrate", "now_iso"]


def now_iso() -> str:
    """The current UTC time as ISO-8601 with microseconds (the ledger's timestamps)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# --- schema: ordered, named migrations --------------------------------------------------------

def _m001_jobs_and_events(db: sqlite3.Connection) -> None:
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


# Append only; never rename or reorder (the names are what a ledger file records).
MIGRATIONS: tuple[tuple[str, Callable[[sqlite3.Connection], None]], ...] = (
    ("m001_jobs_and_events", _m001_jobs_and_events),
)


def migrate(db: sqlite3.Connection, where: Location) -> None:
    """Apply the migrations this ledger lacks, in order, each in its own transaction."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    applied = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    known = {name for name, _ in MIGRATIONS}
    newer = sorted(applied - known)
    if newer:
        raise LedgerError(
            f"this ledger was written by a newer seedance-batch (schema {newer[-1]})", location=where,
            hint="upgrade seedance-batch (pip install -U seedance-batch), or use another --state file",
        )
    for name, step in MIGRATIONS:
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
