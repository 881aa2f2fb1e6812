"""The SQLite ledger's runner operations: leases, takeover, limited claims, the submit schedule.

A part of :class:`~.backend.SqliteLedger`, kept apart by meaning (see :mod:`..claims` for
what they promise). A SQLite file is one runner's at a time (its run lock), so these are
simple: the clock is this machine's (every process using the file runs on it), and a
write transaction (``BEGIN IMMEDIATE``) already serialises every claim.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any

from ...errors import Location
from ...times import now_iso
from ..claims import (
    CHARGED_SQL,
    HELD,
    IN_FLIGHT_LIMITED,
    SUBMIT_SCOPE,
    Claim,
    ClaimLimited,
    ClaimTerms,
    TakenOver,
    account_busy,
    check_lease,
    over_budget,
)
from ..records import JobRecord, JobState
from ..transitions import TRANSITIONS
from .rows import RETURNED, to_record
from .statements import append_event

__all__ = ["RECOVERED", "SqliteRunners", "check_limits"]

RECOVERED = "the run stopped during this job's submit; it may have reached the service"
_TRACKED = tuple(state.value for state in JobState if state.in_flight)
_LIMITED = tuple(state.value for state in IN_FLIGHT_LIMITED)
_HELD = tuple(state.value for state in HELD)
# A row's owner is alive when a runner of that id holds a lease past now (parameter: now).
_ALIVE = "EXISTS (SELECT 1 FROM runners r WHERE r.id = jobs.owner AND r.lease_until > ?)"


def check_limits(db: sqlite3.Connection, campaign: str, key: str, cost: Decimal, where: Location, label: str, *,
                 max_usd: Decimal | None, max_in_flight: int | None) -> ClaimLimited | None:
    """Inside the claim's transaction, before its row moves: the refusal a claim past the budget or the
    in-flight limit gets (raised once the row's state is judged), or None."""
    if max_usd is not None:
        rows = db.execute(f"SELECT cost_usd FROM jobs WHERE campaign = ? AND {CHARGED_SQL}", (campaign,)).fetchall()
        committed = sum((Decimal(str(row[0])) for row in rows), Decimal(0))
        if committed + cost > max_usd:
            return over_budget(committed, cost, max_usd, where, label)
    if max_in_flight is not None:
        marks = ", ".join("?" * len(_LIMITED))
        busy = db.execute(f"SELECT count(*) FROM jobs WHERE state IN ({marks}) AND NOT (campaign = ? AND key = ?)",
                          (*_LIMITED, campaign, key)).fetchone()[0]
        if busy >= max_in_flight:
            return account_busy(max_in_flight, where)
    return None


class SqliteRunners:
    """Leases, takeover and the submit schedule of a SQLite ledger (see :mod:`..claims`)."""

    _lock: threading.RLock
    _where: Location
    _tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _claim_row: Callable[..., JobRecord]

    @property
    def shared(self) -> bool:
        """A SQLite file is one runner's at a time (its run lock)."""
        return False

    def join(self, campaign: str, lease: float) -> str:
        """Register a runner leased ``lease`` seconds from now; its id."""
        runner = uuid.uuid4().hex
        with self._tx() as db:
            db.execute("INSERT INTO runners (id, campaign, joined_at, lease_until) VALUES (?, ?, ?, ?)",
                       (runner, campaign, now_iso(), time.time() + check_lease(lease)))
        return runner

    def renew(self, runner: str, lease: float) -> bool:
        """Extend the lease; False when it had run out or the runner had left (leased again)."""
        now = time.time()
        until = now + check_lease(lease)
        with self._tx() as db:
            row = db.execute("SELECT lease_until FROM runners WHERE id = ?", (runner,)).fetchone()
            db.execute("INSERT INTO runners (id, campaign, joined_at, lease_until) VALUES (?, '', ?, ?) "
                       "ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until", (runner, now_iso(), until))
        return row is not None and float(row[0]) > now

    def leave(self, runner: str) -> None:
        """The runner ends: its submits in the air become unknown, its other rows lose their owner."""
        with self._tx() as db:
            _unknown(db, "owner = ?", (runner,), self._where)
            db.execute("UPDATE jobs SET owner = NULL WHERE owner = ?", (runner,))
            db.execute("UPDATE runners SET lease_until = 0 WHERE id = ?", (runner,))  # ended (kept, as on PostgreSQL)

    def take_over(self, campaign: str, runner: str, keys: Collection[str]) -> TakenOver:
        """The campaign's orphaned rows: in-flight ones among ``keys`` now ``runner``'s, submitting ones unknown."""
        now = time.time()
        wanted = set(keys)
        with self._tx() as db:
            unknown = _unknown(db, f"campaign = ? AND owner IS NOT NULL AND NOT {_ALIVE}", (campaign, now), self._where)
            marks = ", ".join("?" * len(_TRACKED))
            rows = db.execute(
                f"SELECT rowid, key FROM jobs WHERE campaign = ? AND state IN ({marks}) AND task_id IS NOT NULL "
                f"AND (owner IS NULL OR (owner <> ? AND NOT {_ALIVE}))", (campaign, *_TRACKED, runner, now),
            ).fetchall()
            taken = [rowid for rowid, key in rows if key in wanted]
            tracked: list[JobRecord] = []
            for rowid in taken:
                row = db.execute(f"UPDATE jobs SET owner = ? WHERE rowid = ? RETURNING {RETURNED}",
                                 (runner, rowid)).fetchone()
                tracked.append(to_record(row, self._where))
            held = db.execute(f"SELECT key FROM jobs WHERE campaign = ? AND state IN ({', '.join('?' * len(_HELD))}) "
                              f"AND owner <> ? AND {_ALIVE}", (campaign, *_HELD, runner, now)).fetchall()
        return TakenOver(tuple(tracked), tuple(unknown), sum(1 for (key,) in held if key in wanted))

    def claim(self, *, campaign: str, key: str, label: str, shot: str, request: Mapping[str, Any],
              credits: int, cost_usd: Decimal, output_path: str | None, terms: ClaimTerms,
              resubmit: Collection[JobState] = ()) -> Claim:
        """A runner's claim within its terms, with its submit turn and the campaign's claims since ``terms.after``."""
        with self._tx() as db:
            record = self._claim_row(db, campaign, key, label, shot, request, credits, cost_usd, output_path,
                                     resubmit, terms)
            now = time.time()
            row = db.execute("SELECT next_at FROM limits WHERE name = ?", (SUBMIT_SCOPE,)).fetchone()
            turn = max(now, float(row[0])) if row is not None else now
            db.execute("INSERT INTO limits (name, next_at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                       "SET next_at = excluded.next_at", (SUBMIT_SCOPE, turn + terms.interval))
            # every claim after the runner's cursor, this one's last (the write lock is held since it was made)
            claimed = db.execute("SELECT id, key FROM events WHERE campaign = ? AND kind = 'submitting' AND id > ? "
                                 "ORDER BY id", (campaign, terms.after)).fetchall()
        return Claim(record, max(0.0, turn - now), tuple(k for _, k in claimed[:-1]), claimed[-1][0])

    def delay_turns(self, pause: float) -> None:
        """No submit turn before ``pause`` seconds from now."""
        with self._tx() as db:
            later = time.time() + pause
            db.execute("INSERT INTO limits (name, next_at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                       "SET next_at = max(next_at, excluded.next_at)", (SUBMIT_SCOPE, later))


def _unknown(db: sqlite3.Connection, where: str, params: tuple[object, ...], location: Location) -> list[JobRecord]:
    """Every ``submitting`` row matching ``where`` made ``unknown`` (the POST may be out), each with its line."""
    recover = TRANSITIONS["recover"]
    stamp = now_iso()
    rows = db.execute(
        f"UPDATE jobs SET state = ?, error_class = 'ambiguous_submit', error_message = ?, updated_at = ? "
        f"WHERE state = 'submitting' AND {where} RETURNING rowid, {RETURNED}",
        (recover.to.value, RECOVERED, stamp, *params)).fetchall()
    found = [to_record(row[1:], location) for row in sorted(rows, key=lambda row: row[0])]
    for rec in found:
        append_event(db, rec.campaign, rec.key, rec.label, recover.event, recover.to, rec.task_id,
                     {"error_class": "ambiguous_submit", "error_message": RECOVERED}, stamp)
    return found
