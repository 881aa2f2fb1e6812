"""The SQLite ledger: the embedded default backend of :class:`~seedance_batch.ledger.api.Ledger`.

A job's row is written (committed) *before* its submit is sent and gets its task_id
(committed) the moment the answer arrives, so a crash at any instant loses no task_id
and never causes a silent second payment. Every write is one transaction (``BEGIN
IMMEDIATE``: SQLite's write lock is taken first, so what the write checks cannot change
under it), together with its line in the append-only ``events`` table (the audit trail
the report reads). Each write follows :data:`~..transitions.TRANSITIONS`: the row moves
only from the states named there, in one statement (``UPDATE ... WHERE state IN``, an
``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` for a submit), and a write that did not
move it is a repeat (False) or refused (:class:`~..transitions.TransitionRefused`).

Money is stored as integer credits and a decimal string, never as a float. The API key
never enters the ledger: rows hold the request body (which has no key) and error
messages the client has already scrubbed. The schema is versioned by named migrations
(:mod:`.schema`); a database of another program is refused untouched.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from decimal import Decimal
from pathlib import Path
from typing import Any

from ...errors import LedgerError, Location
from ...times import now_iso
from ..claims import ClaimTerms
from ..moves import Moves
from ..records import Event, JobRecord, JobState
from ..refunds import REFUNDED, attach, judge_refund, refund_detail, refund_usd
from ..transitions import TRANSITIONS, Transition, judge, refusal, resubmit_states
from .claims import SqliteRunners, check_limits
from .connect import connect_for_run, connect_read_only
from .extras import SqliteExtras
from .refunds import ROW_PRICE, price_of, read_refunds, recorded_refund
from .rows import EVENT_SELECT, SELECT, to_event, to_record
from .runlock import RUN_LOCKS, lock, unlock
from .statements import RECOVER, append_event, claim, guarded_update, row_now

__all__ = ["SqliteLedger"]

_RECOVERED = "the run stopped during this job's submit; it may have reached the service"
# The row's columns an event repeats in its detail, when a write sets them.
_IN_EVENT = ("error_class", "error_message", "api_status")


class SqliteLedger(SqliteRunners, SqliteExtras, Moves):
    """The campaign state in one SQLite file. Safe to share between threads.

    :meth:`open` for a run (writes, migrates; :meth:`acquire_run_lock` claims it) and
    :meth:`open_read_only` for the commands that only look (``status``, ``plan``,
    ``report``): those never write, never recover, never lock, and read a ledger on a
    read-only file system too. A row this version cannot read is one :class:`LedgerError`
    naming the ledger and the job, never a traceback.
    """

    def __init__(self, db: sqlite3.Connection, path: Path, *, read_only: bool = False) -> None:
        self._db = db
        self._lock = threading.RLock()
        self._run_lock: int | None = None
        self.path = path
        self.read_only = read_only
        self._where = Location(file=str(path))
        try:
            self._inode, self._fd = RUN_LOCKS.enter(path)
        except OSError as exc:
            db.close()
            raise LedgerError(f"cannot open the ledger: {exc.strerror}", location=self._where,
                              hint="pass a readable path with --state or SEEDANCE_STATE") from None
        self._closed = False

    @property
    def location(self) -> str:
        """The database file, as the user named it."""
        return str(self.path)

    # --- opening and closing ----------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> SqliteLedger:
        """Open for a run (creating it and its folder if needed) and migrate the ledger at ``path``.

        A file that is not a ledger is refused before anything is written to it.
        """
        path = Path(path)
        return cls(connect_for_run(path, Location(file=str(path))), path)

    @classmethod
    def open_read_only(cls, path: str | os.PathLike[str]) -> SqliteLedger | None:
        """Open the ledger at ``path`` only to read it; None when there is none there yet.

        No file, an empty file or an empty database is "none yet" (nothing is created).
        Nothing is ever written, not even a migration; a ledger on a read-only file
        system is read too. Reading it while a run writes is safe (WAL).
        """
        path = Path(path)
        db = connect_read_only(path, Location(file=str(path)))
        return None if db is None else cls(db, path, read_only=True)

    def companion(self) -> SqliteLedger:
        """This ledger: a SQLite file's calls wait for no other connection (one runner holds it)."""
        return self

    def close(self) -> None:
        """Close the connection and drop the run lock (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self.release_run_lock()
            self._db.close()
            self._closed = True
            RUN_LOCKS.leave(self._inode, self._fd)  # after the connection: see RunLocks

    def __enter__(self) -> SqliteLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one run at a time ------------------------------------------------------------------

    def acquire_run_lock(self) -> None:
        """Claim the ledger for a run (an ``flock`` on the database file, freed even by ``kill -9``).

        Two runs over one ledger, through whatever names, could submit the same job
        twice; the second is refused.
        """
        if self._run_lock is not None:
            return
        if self.read_only:
            raise LedgerError("this ledger was opened read-only; a run cannot use it", location=self._where)
        lock(self._fd, self._where)
        self._run_lock = self._fd

    def release_run_lock(self) -> None:
        """Give the ledger back (idempotent)."""
        if self._run_lock is not None:
            unlock(self._run_lock)
            self._run_lock = None

    # --- reading ----------------------------------------------------------------------------

    def records(self, campaign: str) -> list[JobRecord]:
        """Every row of a campaign, oldest first (each with its task's refund, if any)."""
        with self._lock:
            rows = self._db.execute(f"{SELECT} WHERE campaign = ? ORDER BY rowid", (campaign,)).fetchall()
            refunds = read_refunds(self._db, campaign)
        where = self._where
        found = [to_record(row, where) for row in rows]
        return attach(found, refunds) if refunds else found

    def record(self, campaign: str, key: str) -> JobRecord | None:
        """One job's row, or None."""
        with self._lock:
            row = self._db.execute(f"{SELECT} WHERE campaign = ? AND key = ?", (campaign, key)).fetchone()
            refunds = read_refunds(self._db, campaign, key=key) if row else {}
        return attach([to_record(row, self._where)], refunds)[0] if row else None

    def by_task_id(self, task_id: str) -> JobRecord | None:
        """The row holding ``task_id`` (a task id this ledger submitted), or None."""
        with self._lock:
            row = self._db.execute(f"{SELECT} WHERE task_id = ?", (task_id,)).fetchone()
            rec = to_record(row, self._where) if row else None
            refunds = read_refunds(self._db, rec.campaign, key=rec.key) if rec else {}
        return attach([rec], refunds)[0] if rec else None

    def events(self, campaign: str) -> list[Event]:
        """The campaign's audit trail, in the order it happened."""
        with self._lock:
            rows = self._db.execute(f"{EVENT_SELECT} WHERE campaign = ? ORDER BY id", (campaign,)).fetchall()
        return [to_event(row, self._where) for row in rows]

    # --- recovery ---------------------------------------------------------------------------

    def recover(self) -> list[JobRecord]:
        """Turn every ``submitting`` row (a crash mid-submit) into ``unknown``; return them.

        The POST may or may not have reached the service, and there is no way to
        ask: the job is never resubmitted automatically (``--resubmit-unknown``).
        While another process holds the run lock its ``submitting`` rows are live,
        not crashed: nothing is recovered then (nor from a read-only opening).
        """
        held_before = self._run_lock is not None
        try:
            self.acquire_run_lock()
        except LedgerError:
            return []
        try:
            return self._recover()
        finally:
            if not held_before:
                self.release_run_lock()

    def _recover(self) -> list[JobRecord]:
        recover = TRANSITIONS["recover"]
        stamp = now_iso()
        with self._tx() as db:
            rows = db.execute(RECOVER, (recover.to.value, _RECOVERED, stamp, JobState.SUBMITTING.value)).fetchall()
            found = [to_record(row[1:], self._where) for row in sorted(rows, key=lambda row: row[0])]
            for rec in found:
                append_event(db, rec.campaign, rec.key, rec.label, recover.event, recover.to, rec.task_id,
                             {"error_class": "ambiguous_submit", "error_message": _RECOVERED}, stamp)
        return found

    # --- the life of a job: each write one transaction -------------------------------------

    def begin_submit(self, *, campaign: str, key: str, label: str, shot: str, request: Mapping[str, Any],
                     credits: int, cost_usd: Decimal, output_path: str | None,
                     resubmit: Collection[JobState] = ()) -> JobRecord:
        """Claim the job (``submitting``, attempts + 1), committed, before the POST is sent.

        Only from no row or ``pending``, and from ``failed``/``unknown`` when they are in
        ``resubmit``; anything else is :class:`~..transitions.TransitionRefused`.
        """
        with self._tx() as db:
            return self._claim_row(db, campaign, key, label, shot, request, credits, cost_usd, output_path,
                                   resubmit, None)

    def _claim_row(self, db: sqlite3.Connection, campaign: str, key: str, label: str, shot: str,
                   request: Mapping[str, Any], credits: int, cost_usd: Decimal, output_path: str | None,
                   resubmit: Collection[JobState], terms: ClaimTerms | None) -> JobRecord:
        """The claim, in ``db``'s transaction; with ``terms`` (a runner's :meth:`claim`), within its limits."""
        transition = TRANSITIONS["begin_submit"]
        also = resubmit_states(resubmit)
        sql, claimable = claim(transition, also)
        stamp = now_iso()
        body = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        limited = None if terms is None else check_limits(
            db, campaign, key, cost_usd, self._where, label, max_usd=terms.max_usd, max_in_flight=terms.max_in_flight)
        rows = db.execute(sql, (campaign, key, label, shot, body, credits, str(cost_usd), output_path, stamp,
                                stamp, stamp, *claimable)).fetchall()
        if not rows:
            problem = self._not_moved(db, transition, campaign, key, resubmit=also)
            assert problem is not None, "a submit is never a repeat"
            raise problem
        if limited is not None:
            raise limited  # rolled back with the transaction: the row is as it was
        if terms is not None:
            db.execute("UPDATE jobs SET owner = ? WHERE campaign = ? AND key = ?", (terms.owner, campaign, key))
        append_event(db, campaign, key, label, transition.event, transition.to, None, {}, stamp)
        return to_record(rows[0], self._where)

    def submitted(self, campaign: str, key: str, task_id: str, api_status: str | None) -> bool:
        """The service answered with a task id: commit it before anything else happens.

        Moves the row from ``submitting``, or from ``unknown``: a row made unknown
        meanwhile (a recovery elsewhere) whose task exists after all, which is good
        news. False when the row already holds this very task id (a repeat). Any other
        refusal would drop a task the service created (and billed): the id is committed
        to the audit trail (event ``task_refused``), then :class:`TransitionRefused` names it.
        """
        transition = TRANSITIONS["submitted"]
        stamp = now_iso()
        with self._tx() as db:
            now = row_now(db, campaign, key, self._where)
            verdict = "refuse" if now.problem else judge(transition, now.state, held=now.task_id, value=task_id)
            if verdict == "repeat":
                return False
            if verdict == "move":
                fields: dict[str, Any] = {"task_id": task_id, "api_status": api_status, "submitted_at": stamp}
                was = None
                if now.state is JobState.UNKNOWN:
                    fields.update(error_class=None, error_message=None)
                    was = {"was": now.state.value}
                self._write(db, campaign, key, now.label, transition, fields, was, stamp)
                return True
            append_event(db, campaign, key, now.label, "task_refused", None, task_id,
                         {"api_status": api_status, "row_state": now.raw_state, "row_task_id": now.task_id}, stamp)
        raise now.problem or refusal(transition, now.state, where=self._where, campaign=campaign, key=key,
                                     label=now.label, held_task=now.task_id, task_id=task_id)

    def refunded(self, campaign: str, key: str, task_id: str, credits: int, *, source: str = "status") -> bool:
        """The service refunded ``credits`` of the failed job's ``task_id``: one ``refunded`` line (see ..refunds)."""
        with self._tx() as db:
            row = db.execute(ROW_PRICE, (campaign, key)).fetchone()
            now = row_now(db, campaign, key, self._where)
            if now.problem:
                raise now.problem
            row_credits = int(row[3]) if row else 0
            given = min(credits, row_credits) if isinstance(credits, int) and credits > 0 else credits
            verdict = judge_refund(now.state, now.task_id, task_id, given,
                                   recorded_refund(db, campaign, key, task_id), where=self._where,
                                   campaign=campaign, key=key, label=now.label)
            if verdict == "repeat":
                return False
            usd = refund_usd(price_of(row[4]), row_credits, given)
            append_event(db, campaign, key, now.label, REFUNDED, now.state, task_id,
                         refund_detail(given, usd, source), now_iso())
        return True

    def note(self, campaign: str, key: str, kind: str, detail: Mapping[str, Any] | None = None) -> None:
        """Append an event without changing the row (a retry, a webhook delivery...)."""
        with self._tx() as db:
            now = row_now(db, campaign, key, self._where)
            if now.problem:
                raise now.problem
            append_event(db, campaign, key, now.label, kind, now.state, now.task_id, dict(detail or {}), now_iso())

    # --- internals --------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, the write lock taken first; what fails is rolled back and worded."""
        if self.read_only:  # a bug, not a user's mistake: the looking commands never write
            raise LedgerError("this ledger was opened read-only: nothing may be written", location=self._where)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:  # disk full, I/O error, locked past the timeout
                self._abandon()
                raise LedgerError(f"cannot write the ledger: {exc}", location=self._where,
                                  hint="free space or fix the file system, then run again "
                                       "(what was committed is kept)") from None

    def _abandon(self) -> None:
        """Roll back a transaction a failed statement left open, so the connection stays usable."""
        if self._db.in_transaction:
            with suppress(sqlite3.Error):  # the failure being reported matters more
                self._db.execute("ROLLBACK")

    def _move(self, operation: str, campaign: str, key: str, *, value: str | None = None,
              detail: Mapping[str, Any] | None = None, **fields: Any) -> bool:
        """Apply one transition in one statement; False for a repeat, TransitionRefused otherwise."""
        transition = TRANSITIONS[operation]
        stamp = now_iso()
        sql, params = guarded_update(transition, campaign, key,
                                     {**fields, "state": transition.to.value, "updated_at": stamp}, value)
        with self._tx() as db:
            rows = db.execute(sql, params).fetchall()
            if not rows:
                problem = self._not_moved(db, transition, campaign, key, value=value)
                if problem is None:
                    return False
                raise problem
            label, task_id = rows[0]
            append_event(db, campaign, key, label, transition.event, transition.to, task_id,
                         {**{k: v for k, v in fields.items() if k in _IN_EVENT}, **(detail or {})}, stamp)
        return True

    def _not_moved(self, db: sqlite3.Connection, transition: Transition, campaign: str, key: str, *,
                   value: str | None = None, resubmit: Collection[JobState] = ()) -> LedgerError | None:
        """Why a transition's statement moved no row: None for a repeat, else the error to raise."""
        now = row_now(db, campaign, key, self._where)
        if now.problem:
            return now.problem
        held = {"task_id": now.task_id, "api_status": now.api_status}.get(transition.same or "")
        verdict = judge(transition, now.state, held=held, value=value, resubmit=resubmit)
        if verdict == "repeat":
            return None
        assert verdict == "refuse", "the statement and judge() disagree"  # one transaction: nothing moved between
        return refusal(transition, now.state, where=self._where, campaign=campaign, key=key, label=now.label)

    def _write(self, db: sqlite3.Connection, campaign: str, key: str, label: str, transition: Transition,
               fields: Mapping[str, Any], detail: Mapping[str, Any] | None, stamp: str) -> None:
        """Update one row to ``transition.to`` and append its event, in ``db``'s transaction."""
        values = {**fields, "state": transition.to.value, "updated_at": stamp}
        assignments = ", ".join(f"{name} = ?" for name in values)
        db.execute(f"UPDATE jobs SET {assignments} WHERE campaign = ? AND key = ?", (*values.values(), campaign, key))
        info = {k: v for k, v in fields.items() if k in _IN_EVENT}
        append_event(db, campaign, key, label, transition.event, transition.to, fields.get("task_id"),
                     {**info, **(detail or {})}, stamp)
