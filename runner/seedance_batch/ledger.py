"""The ledger: SQLite state, the single source of truth of what was submitted.

A job's row is written (committed) *before* its submit is sent and gets its
task_id (committed) the moment the answer arrives, so a crash at any instant
loses no task_id and never causes a silent second payment. Every state change
is its own transaction, together with its line in the append-only ``events``
table (the audit trail the report reads).

Storage: one SQLite file in WAL mode (readers never block the writer), with
``synchronous=NORMAL``: a committed transaction survives the process being
killed at any instant (``kill -9``); only a power cut could lose the last few.
The schema is versioned by ordered, named migrations recorded in the
``_migrations`` table (the shape of simonw/llm's migrations.py); a ledger that
has a migration this version does not know was written by a newer
seedance-batch and is refused rather than misread. Money is stored as integer
credits and a decimal string, never as a float. The API key never enters the
ledger: rows hold the request body (which has no key) and error messages the
client has already scrubbed.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from .errors import LedgerError, Location
from .ledger_schema import migrate, now_iso

__all__ = ["Event", "JobRecord", "JobState", "Ledger", "default_path"]

DEFAULT_PATH = Path(".seedance") / "ledger.sqlite"
STATE_ENV = "SEEDANCE_STATE"


class JobState(str, Enum):
    """Where a job stands in the ledger.

    pending     recorded, not (or no longer) being submitted: nothing was sent that
                the service answered with a task; safe to submit
    submitting  written before the POST; found at start-up it means a crash mid-submit,
                and becomes ``unknown``
    submitted   the service gave a task_id; not terminal yet (in flight)
    finished    the service says finished; the video is not downloaded yet
    done        finished, downloaded and verified (size + sha256)
    failed      the service said failed, or rejected the request (400), or attempts ran out
    unknown     the submit was sent and no answer came: the task may exist and be billed;
                resubmitted only with --resubmit-unknown
    timed_out   run.timeout passed while tracking; the task_id is kept and a later run
                resumes tracking it (it costs nothing to ask)
    """

    PENDING = "pending"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    FINISHED = "finished"
    DONE = "done"
    FAILED = "failed"
    UNKNOWN = "unknown"
    TIMED_OUT = "timed_out"

    @property
    def in_flight(self) -> bool:
        """A task exists and is being (or can be) tracked without paying again."""
        return self in (JobState.SUBMITTED, JobState.FINISHED, JobState.TIMED_OUT)

    @property
    def charged(self) -> bool:
        """Counts as money spent (or possibly spent) against the budget."""
        return self in (
            JobState.SUBMITTING, JobState.SUBMITTED, JobState.FINISHED,
            JobState.DONE, JobState.UNKNOWN, JobState.TIMED_OUT,
        )


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job's row in the ledger, as read back.

    Timestamps are ISO-8601 UTC strings (None until the transition happened).
    ``request`` is the submit body without callback_url, exactly as planned.
    """

    campaign: str
    key: str
    label: str
    shot: str
    request: Mapping[str, Any]
    state: JobState
    task_id: str | None = None
    api_status: str | None = None
    attempts: int = 0
    credits: int = 0
    cost_usd: Decimal = Decimal(0)
    error_class: str | None = None
    error_message: str | None = None
    file_url: str | None = None
    output_path: str | None = None
    size: int | None = None
    sha256: str | None = None
    created_at: str | None = None
    submitted_at: str | None = None
    finished_at: str | None = None
    downloaded_at: str | None = None
    updated_at: str | None = None

    @property
    def charged(self) -> bool:
        """Counts against the budget: a task may exist. A failed task counts too
        (assumption: the contract does not say whether failed renders are billed)."""
        return self.state.charged or (self.state is JobState.FAILED and self.task_id is not None)


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the audit trail: a state change, a retry, a webhook delivery..."""

    id: int
    campaign: str
    key: str
    label: str
    at: str
    kind: str
    state: str | None = None
    task_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def default_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where the ledger lives: ``--state`` > ``$SEEDANCE_STATE`` > ``.seedance/ledger.sqlite``."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(STATE_ENV)
    return Path(from_env) if from_env else DEFAULT_PATH


_COLUMNS = (
    "campaign", "key", "label", "shot", "request", "state", "task_id", "api_status", "attempts",
    "credits", "cost_usd", "error_class", "error_message", "file_url", "output_path", "size",
    "sha256", "created_at", "submitted_at", "finished_at", "downloaded_at", "updated_at",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM jobs"


def _to_record(row: tuple[Any, ...]) -> JobRecord:
    values = dict(zip(_COLUMNS, row))
    values["request"] = json.loads(values["request"])
    values["state"] = JobState(values["state"])
    values["cost_usd"] = Decimal(values["cost_usd"])
    return JobRecord(**values)


class Ledger:
    """The campaign state in one SQLite file. Safe to share between threads.

    Each write method is one committed transaction: the row's new state and its
    event together. Transitions name the states they may start from, so a late
    or duplicate report (a webhook after the poll, say) never moves a job back.
    """

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._lock = threading.RLock()
        self._run_lock: int | None = None
        self.path = path

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Ledger:
        """Open (creating it and its folder if needed) and migrate the ledger at ``path``."""
        path = Path(path)
        where = Location(file=str(path))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the ledger: {exc}", location=where,
                              hint="pass a writable path with --state or SEEDANCE_STATE") from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            migrate(db, where)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise LedgerError(f"not a seedance-batch ledger ({exc})", location=where,
                              hint="point --state at another file, or move this one away") from None
        except LedgerError:
            db.close()
            raise
        return cls(db, path)

    def close(self) -> None:
        """Close the connection and drop the run lock (idempotent)."""
        with self._lock:
            self.release_run_lock()
            self._db.close()

    # --- one run at a time ------------------------------------------------------------------

    def acquire_run_lock(self) -> None:
        """Claim the ledger for a run (an OS file lock, freed even by ``kill -9``).

        Two runs over one ledger could submit the same job twice; the second is refused.
        """
        if self._run_lock is not None:
            return
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LedgerError("another seedance-batch run is using this ledger", location=Location(file=str(self.path)),
                              hint="wait for it to finish, or give this run its own --state") from None
        self._run_lock = fd

    def release_run_lock(self) -> None:
        """Give the ledger back (idempotent)."""
        if self._run_lock is not None:
            os.close(self._run_lock)
            self._run_lock = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
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
                raise LedgerError(f"cannot write the ledger: {exc}", location=Location(file=str(self.path)),
                                  hint="free space or fix the file system, then run again "
                                       "(what was committed is kept)") from None

    def _abandon(self) -> None:
        """Roll back a transaction a failed statement left open, so the connection stays usable."""
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the failure being reported matters more

    # --- reading ---------------------------------------------------------------------------

    def records(self, campaign: str) -> list[JobRecord]:
        """Every row of a campaign, oldest first."""
        with self._lock:
            rows = self._db.execute(f"{_SELECT} WHERE campaign = ? ORDER BY rowid", (campaign,)).fetchall()
        return [_to_record(row) for row in rows]

    def record(self, campaign: str, key: str) -> JobRecord | None:
        """One job's row, or None."""
        with self._lock:
            row = self._db.execute(f"{_SELECT} WHERE campaign = ? AND key = ?", (campaign, key)).fetchone()
        return _to_record(row) if row else None

    def by_task_id(self, task_id: str) -> JobRecord | None:
        """The row holding ``task_id`` (a task id this ledger submitted), or None."""
        with self._lock:
            row = self._db.execute(f"{_SELECT} WHERE task_id = ?", (task_id,)).fetchone()
        return _to_record(row) if row else None

    def events(self, campaign: str) -> list[Event]:
        """The campaign's audit trail, in the order it happened."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, campaign, key, label, at, kind, state, task_id, detail FROM events "
                "WHERE campaign = ? ORDER BY id", (campaign,),
            ).fetchall()
        return [Event(*row[:8], detail=json.loads(row[8])) for row in rows]

    # --- recovery --------------------------------------------------------------------------

    def recover(self) -> list[JobRecord]:
        """Turn every ``submitting`` row (a crash mid-submit) into ``unknown``; return them.

        The POST may or may not have reached the service, and there is no way to
        ask: the job is never resubmitted automatically (``--resubmit-unknown``).
        While another process runs over this ledger its ``submitting`` rows are live,
        not crashed: nothing is recovered then.
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
        with self._tx() as db:
            rows = db.execute(f"{_SELECT} WHERE state = ?", (JobState.SUBMITTING.value,)).fetchall()
            found = [_to_record(row) for row in rows]
            for rec in found:
                message = "the run stopped during this job's submit; it may have reached the service"
                self._set(db, rec, JobState.UNKNOWN, "recovered", {"error_class": "ambiguous_submit",
                                                                   "error_message": message})
        return [self.record(r.campaign, r.key) or r for r in found]

    # --- engine-facing writes: each one transaction -----------------------------------------

    def begin_submit(self, *, campaign: str, key: str, label: str, shot: str, request: Mapping[str, Any],
                     credits: int, cost_usd: Decimal, output_path: str | None) -> JobRecord:
        """Record ``submitting`` (attempts + 1), committed, before the POST is sent."""
        stamp = now_iso()
        body = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        with self._tx() as db:
            db.execute(
                """INSERT INTO jobs (campaign, key, label, shot, request, state, attempts, credits, cost_usd,
                       output_path, created_at, submitting_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, 'submitting', 1, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (campaign, key) DO UPDATE SET
                       label = excluded.label, shot = excluded.shot, state = 'submitting',
                       attempts = attempts + 1, credits = excluded.credits, cost_usd = excluded.cost_usd,
                       output_path = excluded.output_path, task_id = NULL, api_status = NULL,
                       error_class = NULL, error_message = NULL, file_url = NULL,
                       submitting_at = excluded.submitting_at, updated_at = excluded.updated_at""",
                (campaign, key, label, shot, body, credits, str(cost_usd), output_path, stamp, stamp, stamp),
            )
            self._event(db, campaign, key, label, "submitting", JobState.SUBMITTING, None, {}, stamp)
        rec = self.record(campaign, key)
        assert rec is not None
        return rec

    def submitted(self, campaign: str, key: str, task_id: str, api_status: str | None) -> bool:
        """The service answered with a task id: commit it before anything else happens."""
        return self._move(campaign, key, JobState.SUBMITTED, "submitted", {JobState.SUBMITTING},
                          task_id=task_id, api_status=api_status, submitted_at=now_iso())

    def release(self, campaign: str, key: str, error_class: str, message: str) -> bool:
        """Back to ``pending``: the service answered without a task (429, 5xx) or nothing was sent."""
        return self._move(campaign, key, JobState.PENDING, "released", {JobState.SUBMITTING},
                          error_class=error_class, error_message=message)

    def unknown(self, campaign: str, key: str, message: str) -> bool:
        """The submit was sent and no answer came: the task may exist."""
        return self._move(campaign, key, JobState.UNKNOWN, "unknown", {JobState.SUBMITTING},
                          error_class="ambiguous_submit", error_message=message)

    def failed(self, campaign: str, key: str, error_class: str, message: str, api_status: str | None = None) -> bool:
        """The service said failed, rejected the request, or attempts ran out."""
        fields: dict[str, Any] = {"error_class": error_class, "error_message": message}
        if api_status is not None:
            fields["api_status"] = api_status
        return self._move(campaign, key, JobState.FAILED, "failed",
                          {JobState.PENDING, JobState.SUBMITTING, JobState.SUBMITTED, JobState.FINISHED, JobState.TIMED_OUT}, **fields)

    def status_seen(self, campaign: str, key: str, api_status: str) -> bool:
        """A status answer that changes nothing but the service's word for it (``running``...)."""
        rec = self.record(campaign, key)
        if rec is None or rec.api_status == api_status or rec.state not in (JobState.SUBMITTED, JobState.TIMED_OUT):
            return False
        return self._move(campaign, key, JobState.SUBMITTED, "status", {JobState.SUBMITTED, JobState.TIMED_OUT},
                          api_status=api_status)

    def finished(self, campaign: str, key: str, file_url: str | None, *, source: str = "status") -> bool:
        """The service says finished; record the file URL (downloaded next)."""
        return self._move(campaign, key, JobState.FINISHED, "finished",
                          {JobState.SUBMITTED, JobState.TIMED_OUT, JobState.FINISHED},
                          detail={"source": source}, api_status="finished", file_url=file_url,
                          finished_at=now_iso())

    def downloaded(self, campaign: str, key: str, output_path: str, size: int, sha256: str) -> bool:
        """The video is on disk under its final name, size and sha256 verified."""
        return self._move(campaign, key, JobState.DONE, "downloaded", {JobState.FINISHED},
                          detail={"size": size}, output_path=output_path, size=size, sha256=sha256,
                          downloaded_at=now_iso())

    def timed_out(self, campaign: str, key: str, message: str) -> bool:
        """run.timeout passed while tracking; the task id stays for a later run."""
        return self._move(campaign, key, JobState.TIMED_OUT, "timed_out", {JobState.SUBMITTED, JobState.FINISHED},
                          error_class="timeout", error_message=message)

    def note(self, campaign: str, key: str, kind: str, detail: Mapping[str, Any] | None = None) -> None:
        """Append an event without changing the row (a retry, a webhook delivery...)."""
        rec = self.record(campaign, key)
        label = rec.label if rec else ""
        with self._tx() as db:
            self._event(db, campaign, key, label, kind, rec.state if rec else None,
                        rec.task_id if rec else None, dict(detail or {}), now_iso())

    # --- internals -------------------------------------------------------------------------

    def _move(self, campaign: str, key: str, state: JobState, kind: str, allowed: set[JobState], *,
              detail: Mapping[str, Any] | None = None, **fields: Any) -> bool:
        with self._tx() as db:
            row = db.execute(f"{_SELECT} WHERE campaign = ? AND key = ?", (campaign, key)).fetchone()
            if row is None:
                return False
            rec = _to_record(row)
            if rec.state not in allowed:
                return False
            self._set(db, rec, state, kind, fields, detail)
        return True

    def _set(self, db: sqlite3.Connection, rec: JobRecord, state: JobState, kind: str,
             fields: Mapping[str, Any], detail: Mapping[str, Any] | None = None) -> None:
        stamp = now_iso()
        values = {**fields, "state": state.value, "updated_at": stamp}
        assignments = ", ".join(f"{name} = ?" for name in values)
        db.execute(f"UPDATE jobs SET {assignments} WHERE campaign = ? AND key = ?",
                   (*values.values(), rec.campaign, rec.key))
        info = {k: v for k, v in fields.items() if k in ("error_class", "error_message", "api_status")}
        task_id = fields.get("task_id", rec.task_id)
        self._event(db, rec.campaign, rec.key, rec.label, kind, state, task_id, {**info, **(detail or {})}, stamp)

    @staticmethod
    def _event(db: sqlite3.Connection, campaign: str, key: str, label: str, kind: str,
               state: JobState | None, task_id: str | None, detail: Mapping[str, Any], at: str) -> None:
        db.execute(
            "INSERT INTO events (campaign, key, label, at, kind, state, task_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (campaign, key, label, at, kind, state.value if state else None, task_id,
             json.dumps(detail, separators=(",", ":"), default=str)),
        )
