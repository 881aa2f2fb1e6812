"""The PostgreSQL ledger's operations beyond a job's life: the event cursor, callback tokens,
the source media cache, the review's decisions (the SQL is in :mod:`.tables`).

A part of :class:`~.backend.PostgresLedger`, kept apart by meaning. A read-only opening
of a ledger lacking an :data:`~..migrations.ADDITIVE` migration reads its tables as
empty, as the SQLite backend does.
"""

from __future__ import annotations

from collections.abc import Collection

from ...errors import Location
from ...times import now_iso
from ..decisions import Decision, DecisionChange, check_reviewer
from ..mediacache import CachedMedia
from ..records import Event
from ..sqlite.rows import to_event
from . import tables
from .session import Session
from .statements import Sql

__all__ = ["LedgerExtras"]


class LedgerExtras:
    """The event cursor, callback tokens, media cache and decisions of a PostgreSQL ledger."""

    _session: Session
    _sql: Sql
    _where: Location
    _applied: frozenset[str]

    # --- webhook callbacks: a cursor over the events, the runs' secrets as digests -----------

    def events_after(self, campaign: str, after: int, kinds: Collection[str], limit: int = 1000) -> list[Event]:
        """The campaign's events of ``kinds`` after id ``after``, in order (ids are in commit order here)."""
        wanted = sorted(set(kinds))
        if not wanted or limit < 1:
            return []
        sql = (f"{self._sql.select_events} WHERE campaign = %s AND kind = ANY(%s) AND id > %s "
               "ORDER BY id LIMIT %s")
        rows = self._session.run(lambda db: db.execute(sql, (campaign, wanted, after, limit)).fetchall())
        return [to_event(row, self._where) for row in rows]

    def last_event_id(self, campaign: str) -> int:
        """The campaign's newest event id, 0 when it has none."""
        sql = f"SELECT max(id) FROM {self._sql.names.events} WHERE campaign = %s"
        row = self._session.run(lambda db: db.execute(sql, (campaign,)).fetchone())
        return int(row[0] or 0) if row else 0

    def add_callback_token(self, campaign: str, digest: str) -> None:
        """Record a run's callback secret by its digest (the secret itself never comes here)."""
        self._session.run(lambda db: tables.add_token(db, self._sql.names, campaign, digest, now_iso()), write=True)

    def revoke_callback_token(self, digest: str) -> None:
        """Callbacks carrying this secret are refused from now on."""
        self._session.run(lambda db: tables.revoke_token(db, self._sql.names, digest, now_iso()), write=True)

    def callback_tokens(self) -> dict[str, str]:
        """Every live digest and its campaign."""
        if "m011_callback_tokens" not in self._applied:
            return {}
        return self._session.run(lambda db: tables.callback_tokens(db, self._sql.names))

    # --- the source media cache -------------------------------------------------------------

    def media_checks(self, url_hashes: Collection[str]) -> dict[str, CachedMedia]:
        """The cached checks of these URL hashes, by hash."""
        if "m013_media_checks" not in self._applied or not url_hashes:
            return {}
        return self._session.run(lambda db: tables.media_checks(db, self._sql.names, url_hashes))

    def save_media_checks(self, entries: Collection[CachedMedia]) -> None:
        """Insert or replace the entries, in one transaction."""
        self._session.run(lambda db: tables.save_media_checks(db, self._sql.names, entries), write=True)

    # --- the review's decisions -------------------------------------------------------------

    def decide(self, campaign: str, key: str, change: DecisionChange, *, label: str, combination: str,
               reviewer: str) -> list[Decision]:
        """Apply one reviewer's change to a take's decision, in one transaction; the decisions it changed."""
        name = check_reviewer(reviewer)
        return self._session.run(lambda db: tables.decide(
            db, self._sql.names, change, campaign=campaign, key=key, label=label, combination=combination,
            reviewer=name, at=now_iso(), where=self._where), write=True)

    def decisions(self, campaign: str) -> list[Decision]:
        """The campaign's current decisions (none on a ledger from before the review)."""
        return self._decisions(campaign, history=False)

    def decision_history(self, campaign: str) -> list[Decision]:
        """Every decision written for the campaign, oldest first."""
        return self._decisions(campaign, history=True)

    def _decisions(self, campaign: str, *, history: bool) -> list[Decision]:
        if "m012_decisions" not in self._applied:
            return []
        return self._session.run(lambda db: tables.decisions(db, self._sql.names, campaign, self._where,
                                                             history=history))
