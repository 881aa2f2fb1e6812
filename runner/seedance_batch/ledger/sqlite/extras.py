"""The SQLite ledger's operations beyond a job's life: the event cursor, callback tokens,
the source media cache, the review's decisions, moving a campaign's history in.

A part of :class:`~.backend.SqliteLedger`, kept apart by meaning (as the PostgreSQL
backend's :mod:`..postgres.extras`); the SQL of the media cache, the decisions and the
copy is in :mod:`.media`, :mod:`.decisions` and :mod:`.copying`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager

from ...errors import LedgerError, Location
from ...times import now_iso
from ..copying import CopyCounts
from ..decisions import Decision, DecisionChange, check_reviewer
from ..mediacache import CachedMedia
from ..records import Event, JobRecord
from . import copying
from .decisions import read_current, read_history, write_change
from .media import read_media_checks, write_media_checks
from .rows import EVENT_SELECT, to_event

__all__ = ["SqliteExtras"]


class SqliteExtras:
    """The event cursor, callback tokens, media cache, decisions and copying of a SQLite ledger."""

    _db: sqlite3.Connection
    _lock: threading.RLock
    _where: Location
    _tx: Callable[[], AbstractContextManager[sqlite3.Connection]]

    # --- webhook callbacks ------------------------------------------------------------------

    def events_after(self, campaign: str, after: int, kinds: Collection[str], limit: int = 1000) -> list[Event]:
        """The campaign's events of ``kinds`` after id ``after``, in order (an index range: events_kind)."""
        wanted = sorted(set(kinds))
        if not wanted or limit < 1:
            return []
        marks = ", ".join("?" * len(wanted))
        with self._lock:
            rows = self._db.execute(f"{EVENT_SELECT} WHERE campaign = ? AND kind IN ({marks}) AND id > ? "
                                    "ORDER BY id LIMIT ?", (campaign, *wanted, after, limit)).fetchall()
        return [to_event(row, self._where) for row in rows]

    def last_event_id(self, campaign: str) -> int:
        """The campaign's newest event id, 0 when it has none (the events_campaign index's last entry)."""
        with self._lock:
            row = self._db.execute("SELECT max(id) FROM events WHERE campaign = ?", (campaign,)).fetchone()
        return int(row[0]) if row and isinstance(row[0], int) else 0

    def add_callback_token(self, campaign: str, digest: str) -> None:
        """Record a run's callback secret by its digest (the secret itself never comes here)."""
        with self._tx() as db:
            db.execute("INSERT INTO callback_tokens (digest, campaign, created_at) VALUES (?, ?, ?) "
                       "ON CONFLICT (digest) DO NOTHING", (digest, campaign, now_iso()))

    def revoke_callback_token(self, digest: str) -> None:
        """Callbacks carrying this secret are refused from now on."""
        with self._tx() as db:
            db.execute("UPDATE callback_tokens SET revoked_at = ? WHERE digest = ? AND revoked_at IS NULL",
                       (now_iso(), digest))

    def callback_tokens(self) -> dict[str, str]:
        """Every live digest and its campaign."""
        with self._lock:
            rows = self._db.execute("SELECT digest, campaign FROM callback_tokens WHERE revoked_at IS NULL").fetchall()
        return {str(digest): str(campaign) for digest, campaign in rows}

    # --- the source media cache (..mediacache; the SQL is in .media) -------------------------

    def media_checks(self, url_hashes: Collection[str]) -> dict[str, CachedMedia]:
        """The cached checks of these URL hashes, by hash (rows this version cannot read are left out)."""
        with self._lock:
            try:
                return read_media_checks(self._db, url_hashes)
            except sqlite3.Error as exc:  # a damaged file, an I/O error: worded, never a traceback
                raise LedgerError(f"cannot read the media cache: {exc}", location=self._where) from None

    def save_media_checks(self, entries: Collection[CachedMedia]) -> None:
        """Insert or replace the entries, in one transaction."""
        with self._tx() as db:
            write_media_checks(db, entries)

    # --- the review's decisions (..decisions; the SQL is in .decisions) ------------------------

    def decide(self, campaign: str, key: str, change: DecisionChange, *, label: str, combination: str,
               reviewer: str) -> list[Decision]:
        """Apply one reviewer's change to a take's decision, in one transaction; the decisions it changed."""
        with self._tx() as db:
            return write_change(db, change, campaign=campaign, key=key, label=label, combination=combination,
                                reviewer=check_reviewer(reviewer), at=now_iso(), where=self._where)

    def decisions(self, campaign: str) -> list[Decision]:
        """The campaign's current decisions (none on a ledger from before the review)."""
        with self._lock:
            return read_current(self._db, campaign, self._where)

    def decision_history(self, campaign: str) -> list[Decision]:
        """Every decision written for the campaign, oldest first."""
        with self._lock:
            return read_history(self._db, campaign, self._where)

    # --- moving a campaign's history between ledgers (..copying; the SQL is in .copying) -----

    def campaigns(self) -> list[str]:
        """Every campaign with a row or an event in this file, by name."""
        with self._lock:
            return copying.campaigns(self._db)

    def copy_in(self, campaign: str, records: Sequence[JobRecord], events: Sequence[Event]) -> CopyCounts:
        """Write another ledger's history of ``campaign`` here, in one transaction (see the Protocol)."""
        with self._tx() as db:
            return copying.copy_in(db, campaign, records, events, self._where)
