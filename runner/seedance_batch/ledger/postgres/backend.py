"""The PostgreSQL ledger: one campaign store shared by every runner, reader and receiver of a team.

The same :class:`~..api.Ledger` as the SQLite file, held to the same contract suite:
each job's row committed as ``submitting`` before its POST and with its task id the
moment the answer arrives; each write one transaction that moves a row only from the
states :data:`~..transitions.TRANSITIONS` names, with its audit line; a repeat is
False, anything else refused by name. Where the two differ, it is because several
runners sharing one campaign is the point here:

- There is no exclusive run lock: :meth:`PostgresLedger.acquire_run_lock` registers
  nothing and locks nobody out (runners coordinate row by row: a claim is one guarded
  statement, and of two claims of one job exactly one wins).
- :meth:`PostgresLedger.recover` recovers only the ``submitting`` rows of runners whose
  lease ran out (:mod:`.claims`): a row claimed by a live runner is its submit in the air.
  A row claimed without an owner is left as it is (never submitted again: a claim needs
  ``pending``).

The URL's password never leaves :mod:`.target`: :attr:`location` is the URL without it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from contextlib import contextmanager, suppress
from decimal import Decimal
from typing import Any, Literal

import psycopg

from ...errors import LedgerError
from ...times import now_iso
from ..copying import CopyCounts, plan_copy, record_values
from ..migrations import ADDITIVE, MIGRATIONS
from ..moves import Moves
from ..records import Event, JobRecord, JobState
from ..refunds import attach
from ..sqlite.rows import BadRow, state_of, to_event, unreadable
from ..sqlite.statements import RowNow
from ..transitions import TRANSITIONS, Transition, judge, refusal, resubmit_states, shown
from .claims import PostgresRunners
from .connection import Connection, connect, failed, is_lost
from .extras import LedgerExtras
from .refunds import read_refunds, write_refund
from .rows import to_record
from .schema import Names, applied_migrations, check_shape, migrate
from .session import Session
from .statements import Sql, detail_json
from .target import Target, parse_target

__all__ = ["PostgresLedger"]

# The row's columns an event repeats in its detail, when a write sets them (as the SQLite backend).
_IN_EVENT = ("error_class", "error_message", "api_status")
_KNOWN_STATES = [state.value for state in JobState]
# How often a write that moved nothing looks again, when the row changed between its statement
# and the look (another runner moved it into a state this write may move it from).
_RACES = 5


class PostgresLedger(PostgresRunners, LedgerExtras, Moves):
    """The campaign state in a PostgreSQL schema. Safe to share between threads (one call at a time).

    :meth:`open` for a run (creates the schema, migrates) and :meth:`open_read_only` for the
    commands that only look: those never write (the server refuses it too), never
    migrate, and read a ledger whose role may only ``SELECT``.
    """

    def __init__(self, session: Session, applied: Collection[str] = MIGRATIONS) -> None:
        self._session = session
        # A read-only opening may read a ledger lacking an ADDITIVE migration: its tables read as empty.
        self._applied = frozenset(applied)
        self._target = session.target
        self._where = session.target.where
        self._sql = Sql(Names(session.target.schema))
        self.read_only = session.read_only

    @property
    def location(self) -> str:
        """The ledger's URL without its password."""
        return self._target.shown

    # --- opening and closing ----------------------------------------------------------------

    @classmethod
    def open(cls, location: str) -> PostgresLedger:
        """Connect for a run; create the ledger's schema and tables when missing, and migrate it."""
        target = parse_target(location)
        conn = connect(target, read_only=False)
        with _closing_on_error(conn, target):
            migrate(conn, target)
            check_shape(conn, target)
        return cls(Session(target, conn, read_only=False))

    @classmethod
    def open_read_only(cls, location: str) -> PostgresLedger | None:
        """Connect only to read; None when the database holds no ledger in that schema yet (nothing is created)."""
        target = parse_target(location)
        conn = connect(target, read_only=True)
        with _closing_on_error(conn, target), conn.transaction():
            applied = applied_migrations(conn, target)
            if applied and set(MIGRATIONS) - set(applied) - ADDITIVE:
                raise LedgerError("this ledger was written by an older seedance-batch and needs migrating",
                                  location=target.where, hint="a run migrates it (status, plan and report only read)")
            if applied:
                check_shape(conn, target)
        if not applied:
            conn.close()
            return None
        return cls(Session(target, conn, read_only=True), applied)

    def companion(self) -> PostgresLedger:
        """The same ledger on a new connection of its own (close it when done): a runner's lease
        renewals and takeovers must never wait behind a claim that waits for another runner's lock."""
        conn = connect(self._target, read_only=self.read_only)
        return PostgresLedger(Session(self._target, conn, read_only=self.read_only), self._applied)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._session.close()

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- runners ----------------------------------------------------------------------------

    def acquire_run_lock(self) -> None:
        """Nothing to lock: any number of runners share this ledger (refused on a read-only opening)."""
        if self.read_only:
            raise LedgerError("this ledger was opened read-only; a run cannot use it", location=self._where)

    def release_run_lock(self) -> None:
        """Nothing to give back."""

    # --- reading ----------------------------------------------------------------------------

    def records(self, campaign: str) -> list[JobRecord]:
        """Every row of a campaign, oldest first (each with its task's refund, if any)."""
        rows = self._read(f"{self._sql.select} WHERE campaign = %s ORDER BY seq", (campaign,))
        return self._refunded([to_record(row, self._where) for row in rows], campaign)

    def record(self, campaign: str, key: str) -> JobRecord | None:
        """One job's row, or None."""
        rows = self._read(f"{self._sql.select} WHERE campaign = %s AND key = %s", (campaign, key))
        return self._refunded([to_record(rows[0], self._where)], campaign, key)[0] if rows else None

    def by_task_id(self, task_id: str) -> JobRecord | None:
        """The row holding ``task_id``, or None."""
        rows = self._read(f"{self._sql.select} WHERE task_id = %s ORDER BY seq LIMIT 1", (task_id,))
        if not rows:
            return None
        rec = to_record(rows[0], self._where)
        return self._refunded([rec], rec.campaign, rec.key)[0]

    def _refunded(self, found: list[JobRecord], campaign: str, key: str | None = None) -> list[JobRecord]:
        """``found`` with the refunds of their tasks on them (see ..refunds)."""
        if not found:
            return found
        refunds = self._session.run(lambda db: read_refunds(db, self._sql.names, campaign, key=key))
        return attach(found, refunds) if refunds else found

    def events(self, campaign: str) -> list[Event]:
        """The campaign's audit trail, in the order it was committed."""
        rows = self._read(f"{self._sql.select_events} WHERE campaign = %s ORDER BY id", (campaign,))
        return [to_event(row, self._where) for row in rows]

    def campaigns(self) -> list[str]:
        """Every campaign with a row or an event here, by name."""
        return [str(row[0]) for row in self._read(self._sql.campaigns, ())]

    # --- the life of a job: each write one statement (one transaction) ----------------------

    def begin_submit(self, *, campaign: str, key: str, label: str, shot: str, request: Mapping[str, Any],
                     credits: int, cost_usd: Decimal, output_path: str | None,
                     resubmit: Collection[JobState] = ()) -> JobRecord:
        """Claim the job (``submitting``, attempts + 1), committed, before the POST is sent."""
        transition = TRANSITIONS["begin_submit"]
        also = resubmit_states(resubmit)
        stamp = now_iso()
        body = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        params = (campaign, key, label, shot, body, credits, cost_usd, output_path, stamp, stamp, stamp, None,
                  Sql.claimable(transition, sorted(also)), stamp, transition.event, "{}")

        def claim(db: Connection) -> tuple[Any, ...]:
            for _ in range(_RACES):
                row = db.execute(self._sql.claim(), params).fetchone()
                if row is not None:
                    return tuple(row)
                self._why_not(db, transition, campaign, key, resubmit=also)
            raise self._busy(key)

        return to_record(self._session.run(claim, write=True, retry=False), self._where)

    def submitted(self, campaign: str, key: str, task_id: str, api_status: str | None) -> bool:
        """The service created ``task_id``: commit it before anything else happens (see the Protocol)."""
        transition = TRANSITIONS["submitted"]
        stamp = now_iso()
        fields = {"task_id": task_id, "api_status": api_status, "submitted_at": stamp, "state": "submitted",
                  "updated_at": stamp}
        from_unknown = {**fields, "error_class": None, "error_message": None}

        def land(db: Connection) -> bool:
            for _ in range(_RACES):
                if self._moved(db, transition, campaign, key, fields, task_id, {"api_status": api_status},
                               stamp, only=(JobState.SUBMITTING,)):
                    return True
                now = self._row_now(db, campaign, key)
                verdict = "refuse" if now.problem else judge(transition, now.state, held=now.task_id, value=task_id)
                if verdict == "repeat":
                    return False
                if verdict == "refuse":
                    self._refuse_task(db, campaign, key, task_id, api_status, now, stamp)
                if now.state is JobState.UNKNOWN and self._moved(
                        db, transition, campaign, key, from_unknown, task_id,
                        {"api_status": api_status, "error_class": None, "error_message": None, "was": "unknown"},
                        stamp, only=(JobState.UNKNOWN,)):
                    return True
            raise self._busy(key)

        return self._session.run(land, write=True)

    def note(self, campaign: str, key: str, kind: str, detail: Mapping[str, Any] | None = None) -> None:
        """Append an event without changing the row (a retry, a webhook delivery...)."""
        params = (campaign, key, campaign, key, _KNOWN_STATES, now_iso(), kind, detail_json(dict(detail or {})))
        row = self._session.run(lambda db: db.execute(self._sql.note, params).fetchone(), write=True)
        label, state, written = row if row is not None else ("", None, 0)  # the statement always returns one
        if not written:
            raise unreadable(label, key, BadRow(f"state {shown(state)} is not one this version knows"), self._where)

    def refunded(self, campaign: str, key: str, task_id: str, credits: int, *, source: str = "status") -> bool:
        """The service refunded ``credits`` of the failed job's ``task_id``: one ``refunded`` line (see ..refunds)."""
        return self._session.run(lambda db: write_refund(
            db, self._sql.names, self._sql.event, campaign=campaign, key=key, task_id=task_id, credits=credits,
            source=source, where=self._where), write=True)

    # --- copying a campaign's history in (ledger copy) --------------------------------------

    def copy_in(self, campaign: str, records: Sequence[JobRecord], events: Sequence[Event]) -> CopyCounts:
        """Write another ledger's history of ``campaign`` here, in one transaction (see :mod:`..copying`)."""

        def copy(db: Connection) -> CopyCounts:
            with db.transaction():
                here = [to_record(row, self._where) for row in db.execute(
                    f"{self._sql.select} WHERE campaign = %s ORDER BY seq", (campaign,)).fetchall()]
                trail = [to_event(row, self._where) for row in db.execute(
                    f"{self._sql.select_events} WHERE campaign = %s ORDER BY id", (campaign,)).fetchall()]
                plan = plan_copy(campaign, records, events, here, trail, self._where)
                with db.cursor() as cur:
                    cur.executemany(self._sql.copy_job, [list(record_values(rec).values()) for rec in plan.records])
                    cur.executemany(self._sql.event, [Sql.event_values(event) for event in plan.events])
                return plan.counts

        return self._session.run(copy, write=True, retry=False)

    # --- internals --------------------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._session.run(lambda db: db.execute(sql, params).fetchall())

    def _move(self, operation: str, campaign: str, key: str, *, value: str | None = None,
              detail: Mapping[str, Any] | None = None, **fields: Any) -> bool:
        """Apply one transition in one statement; False for a repeat, TransitionRefused otherwise."""
        transition = TRANSITIONS[operation]
        stamp = now_iso()
        values = {**fields, "state": transition.to.value, "updated_at": stamp}
        info = {**{k: v for k, v in fields.items() if k in _IN_EVENT}, **(detail or {})}

        def move(db: Connection) -> bool:
            for _ in range(_RACES):
                if self._moved(db, transition, campaign, key, values, value, info, stamp):
                    return True
                if self._why_not(db, transition, campaign, key, value=value) == "repeat":
                    return False
            raise self._busy(key)

        return self._session.run(move, write=True)

    def _moved(self, db: Connection, transition: Transition, campaign: str, key: str, fields: Mapping[str, Any],
               value: str | None, detail: Mapping[str, Any], stamp: str,
               only: Collection[JobState] | None = None) -> bool:
        sql, params = self._sql.move(transition, campaign, key, fields, value, only=only)
        return db.execute(sql, [*params, stamp, transition.event, detail_json(detail)]).fetchone() is not None

    def _row_now(self, db: Connection, campaign: str, key: str) -> RowNow:
        row = db.execute(self._sql.row_now, (campaign, key)).fetchone()
        if row is None:
            return RowNow(None, None, "", None, None)
        raw, label, task_id, api_status = row
        try:
            return RowNow(state_of(raw), raw, label, task_id, api_status)
        except BadRow as bad:
            return RowNow(None, raw, label, task_id, api_status, unreadable(label, key, bad, self._where))

    def _why_not(self, db: Connection, transition: Transition, campaign: str, key: str, *,
                 value: str | None = None, resubmit: Collection[JobState] = ()) -> Literal["move", "repeat"]:
        """Why a statement moved no row: "repeat", or "move" (it changed meanwhile: try again); else raise."""
        now = self._row_now(db, campaign, key)
        if now.problem:
            raise now.problem
        held = {"task_id": now.task_id, "api_status": now.api_status}.get(transition.same or "")
        verdict = judge(transition, now.state, held=held, value=value, resubmit=resubmit)
        if verdict == "refuse":
            raise refusal(transition, now.state, where=self._where, campaign=campaign, key=key, label=now.label)
        return verdict

    def _refuse_task(self, db: Connection, campaign: str, key: str, task_id: str, api_status: str | None,
                     now: RowNow, stamp: str) -> None:
        """Keep a task id the row cannot take in the audit trail (committed), then refuse by name."""
        detail = {"api_status": api_status, "row_state": now.raw_state, "row_task_id": now.task_id}
        db.execute(self._sql.event, (campaign, key, now.label, stamp, "task_refused", None, task_id,
                                     detail_json(detail)))
        raise now.problem or refusal(TRANSITIONS["submitted"], now.state, where=self._where, campaign=campaign,
                                     key=key, label=now.label, held_task=now.task_id, task_id=task_id)

    def _busy(self, key: str) -> LedgerError:
        return LedgerError("this job's row kept changing under this write (other runners are moving it)",
                           location=self._where, hint=f"nothing was changed for job key {shown(key)}; run again")


@contextmanager
def _closing_on_error(conn: Connection, target: Target) -> Any:
    """While a ledger is being opened: any failure closes ``conn``; database errors become one LedgerError."""
    try:
        yield
    except psycopg.Error as exc:
        lost = is_lost(exc, conn)
        with suppress(psycopg.Error):
            conn.close()
        raise failed(exc, target, lost=lost) from None
    except BaseException:
        with suppress(psycopg.Error):
            conn.close()
        raise
