"""The SQLite ledger: the embedded default backend of :class:`~seedance_batch.ledger.api.Ledger`.

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
seedance-batch and is refused rather than misread, and a database of another
program is refused untouched (byte for byte). Money is stored as integer credits
and a decimal string, never as a float. The API key never enters the ledger: rows
hold the request body (which has no key) and error messages the client has
already scrubbed.

Two ways in: :meth:`SqliteLedger.open` for a run (writes, migrates, takes the run lock)
and :meth:`SqliteLedger.open_read_only` for the commands that only look (``status``,
``plan``, ``report``): those never write, never recover, and read a ledger on a
read-only file system too. A row this version cannot read is one
:class:`LedgerError` naming the ledger and the job, never a traceback.

The run lock is an ``flock`` on the database file itself (its inode), so every
name of the file (a symlink, a hard link, another relative path) meets the same
lock; on Linux ``flock`` locks and SQLite's POSIX (``fcntl``) locks are separate
and do not interfere. One trap is avoided by design: closing *any* descriptor of
the database file drops every POSIX lock this process holds on it, SQLite's
included (sqlite.org/howtocorrupt.html, 2.2). So the lock's descriptors are
closed only when no ledger of this process has the file open any more
(:class:`_RunLocks`). ``flock`` over NFS is emulated with POSIX locks and would
clash: the ledger, like SQLite's WAL mode itself, wants a local file system.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ..errors import LedgerError, Location
from ..safetext import bound, one_line
from ..times import now_iso
from .migrations import MIGRATIONS, applied_migrations, check_shape, migrate
from .records import Event, JobRecord, JobState

__all__ = ["SqliteLedger", "default_path"]

DEFAULT_PATH = Path(".seedance") / "ledger.sqlite"
STATE_ENV = "SEEDANCE_STATE"


def default_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where the ledger lives: ``--state`` > ``$SEEDANCE_STATE`` > ``.seedance/ledger.sqlite``."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(STATE_ENV)
    return Path(from_env) if from_env else DEFAULT_PATH


# In JobRecord's field order: a row becomes JobRecord(*values) (the fastest way for 100,000 rows).
_COLUMNS = (
    "campaign", "key", "label", "shot", "request", "state", "task_id", "api_status", "attempts",
    "credits", "cost_usd", "error_class", "error_message", "file_url", "output_path", "size",
    "sha256", "created_at", "submitted_at", "finished_at", "downloaded_at", "updated_at",
)
# What each column holds when read back: text or a count (an integer, never negative),
# and whether it may be NULL. Anything else was not written by this version.
_TEXT_COLUMNS: Mapping[str, bool] = {
    "campaign": False, "key": False, "label": False, "shot": False, "request": False, "state": False,
    "cost_usd": False, "task_id": True, "api_status": True, "error_class": True, "error_message": True,
    "file_url": True, "output_path": True, "sha256": True, "created_at": True, "submitted_at": True,
    "finished_at": True, "downloaded_at": True, "updated_at": True,
}
_COUNT_COLUMNS: Mapping[str, bool] = {"attempts": False, "credits": False, "size": True}


def _well_typed() -> str:
    """An SQL test of every column's kind, so SQLite checks 100,000 rows in C, not Python per field."""
    tests = []
    for name, nullable in _TEXT_COLUMNS.items():
        tests.append(f"typeof({name}) IN ('text', 'null')" if nullable else f"typeof({name}) = 'text'")
    for name, nullable in _COUNT_COLUMNS.items():
        test = f"(typeof({name}) = 'integer' AND {name} >= 0)"
        tests.append(f"({test} OR {name} IS NULL)" if nullable else test)
    return " AND ".join(tests)


# The last column says whether the row's kinds are all as written (1), else the row is looked at closely.
_SELECT = f"SELECT {', '.join(_COLUMNS)}, ({_well_typed()}) FROM jobs"
_AT = {name: index for index, name in enumerate(_COLUMNS)}
# How much of a value read from a row an error quotes: enough to find the row, not a flood.
_SHOWN_VALUE = 60
_BAD_ROW_HINT = ("upgrade seedance-batch if a newer version wrote it, or repair or remove that row "
                 "(nothing was changed)")


class _BadRow(ValueError):
    """What makes a ledger row unreadable, in words (becomes a LedgerError naming the ledger)."""


def _shown(value: object) -> str:
    """A value read from the ledger, quoted in an error: bounded, one line, inert on a terminal."""
    return one_line(bound(value if isinstance(value, str) else repr(value), _SHOWN_VALUE))


def _to_record(row: tuple[Any, ...], where: Location) -> JobRecord:
    """A ``jobs`` row (from ``_SELECT``) as a record; one this version cannot read is a :class:`LedgerError`."""
    try:
        return JobRecord(*_decoded(row))
    except _BadRow as bad:
        label = row[_AT["label"]] if isinstance(row[_AT["label"]], str) and row[_AT["label"]] else row[_AT["key"]]
        raise LedgerError(f"cannot read this job's row: {bad}", location=replace(where, job=_shown(label)),
                          hint=_BAD_ROW_HINT) from None


def _decoded(row: tuple[Any, ...]) -> list[Any]:
    """A row's values, checked and converted, in JobRecord's field order; :class:`_BadRow` says what is wrong.

    The row's last column is :func:`_well_typed`: when SQLite found every kind right, only
    the values that need converting are looked at here (this runs for every row read).
    """
    values = list(row[:-1])
    if not row[-1]:
        _check_kinds(dict(zip(_COLUMNS, values, strict=True)))
    state, request, cost = values[_AT["state"]], values[_AT["request"]], values[_AT["cost_usd"]]
    try:
        values[_AT["state"]] = JobState(state)
    except ValueError:
        raise _BadRow(f"state {_shown(state)} is not one this version knows") from None
    try:
        values[_AT["request"]] = json.loads(request)
    except ValueError:
        raise _BadRow("its request is not valid JSON") from None
    if not isinstance(values[_AT["request"]], dict):
        raise _BadRow("its request is not a JSON object")
    try:
        values[_AT["cost_usd"]] = amount = Decimal(cost)
    except InvalidOperation:
        raise _BadRow(f"cost_usd {_shown(cost)} is not a decimal amount") from None
    if not amount.is_finite() or amount < 0:
        raise _BadRow(f"cost_usd {_shown(cost)} is not an amount of money")
    return values


def _check_kinds(values: Mapping[str, Any]) -> None:
    """Say which column of a row holds something of the wrong kind (:func:`_well_typed` found one)."""
    for name, nullable in _TEXT_COLUMNS.items():
        value = values[name]
        if not (isinstance(value, str) or (nullable and value is None)):
            raise _BadRow(f"{name} is {_shown(value)}, not text")
    for name, nullable in _COUNT_COLUMNS.items():
        value = values[name]
        # a negative count or size is as unreadable as a word: it would bend the budget
        if not ((isinstance(value, int) and value >= 0) or (nullable and value is None)):
            raise _BadRow(f"{name} is {_shown(value)}, not a count")


def _to_event(row: tuple[Any, ...], where: Location) -> Event:
    """An ``events`` row as an :class:`Event`; one this version cannot read is a :class:`LedgerError`."""
    try:
        detail = json.loads(row[8]) if isinstance(row[8], str) else None
    except ValueError:
        detail = None
    if not isinstance(detail, dict) or not all(isinstance(v, str) or v is None for v in row[1:8]):
        raise LedgerError(f"cannot read event {_shown(row[0])} of the audit trail (not the shape this version "
                          "writes)", location=where, hint=_BAD_ROW_HINT)
    event_id, campaign, key, label, at, kind, state, task_id = row[:8]
    return Event(event_id, campaign, key, label, at, kind, state, task_id, detail=detail)


class _RunLocks:
    """The run lock's descriptors of the database files this process has open, per inode.

    Each open :class:`SqliteLedger` has its own descriptor of its database file (its own
    open file description, so two ledgers of one process exclude each other like
    two processes). A descriptor is never closed while any ledger of this process
    still has that file open: closing it would silently drop SQLite's POSIX locks on
    the file (the SHARED lock a WAL connection keeps), and another process could then
    delete the write-ahead log under a live connection. Such descriptors wait in
    ``_idle`` for the next ledger of that file, and are all closed with the last one.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._users: dict[tuple[int, int], int] = {}
        self._idle: dict[tuple[int, int], list[int]] = {}

    def enter(self, path: Path) -> tuple[tuple[int, int], int]:
        """A descriptor of the database file at ``path`` for a ledger being opened, and its inode."""
        with self._guard:
            named = _inode(os.stat(path))
            idle = self._idle.get(named)
            fd = idle.pop() if idle else os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            inode = _inode(os.fstat(fd))  # the descriptor's own file, whatever the path names by now
            self._users[inode] = self._users.get(inode, 0) + 1
            return inode, fd

    def leave(self, inode: tuple[int, int], fd: int) -> None:
        """A ledger of this file was closed (its SQLite connection first): park or close ``fd``."""
        with self._guard:
            self._users[inode] -= 1
            parked = self._idle.setdefault(inode, [])
            parked.append(fd)
            if self._users[inode] == 0:
                del self._users[inode], self._idle[inode]
                for each in parked:
                    os.close(each)


_RUN_LOCKS = _RunLocks()


def _inode(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


# SQLite's words for "the WAL index cannot be shared here": a read-only folder lacking the
# ledger's -shm or -wal file (SQLite can neither create nor lock them). Not any other
# READONLY error: a hot rollback journal, say, must not be read past.
_NO_SHARED_INDEX = ("SQLITE_CANTOPEN", "SQLITE_READONLY_CANTINIT")


def _connect_read_only(path: Path, where: Location) -> sqlite3.Connection:
    """A connection that cannot write ``path``: ``mode=ro``, else ``immutable=1`` where that is safe.

    SQLite cannot open a WAL database ``mode=ro`` in a read-only folder lacking its
    ``-shm`` file. Then, if the write-ahead log holds nothing, the file alone is the
    whole ledger and is read ``immutable`` (no locks, no ``-shm``): on a read-only
    file system nobody can change it meanwhile. A WAL with changes in it is refused:
    reading past it would show a ledger older than it is.
    """
    uri = path.absolute().as_uri()
    try:
        return _probe(f"{uri}?mode=ro")
    except sqlite3.Error as exc:
        first = exc
    if not getattr(first, "sqlite_errorname", "").startswith(_NO_SHARED_INDEX):
        raise _sqlite_problem(first, where)
    wal = Path(f"{path.resolve()}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise LedgerError(f"cannot read the ledger here: its write-ahead log {wal.name} holds changes not yet in "
                          "the file, and SQLite cannot read them in a read-only folder", location=where,
                          hint="copy the ledger with its -wal file to a writable folder and pass that with --state")
    try:
        return _probe(f"{uri}?mode=ro&immutable=1")
    except sqlite3.Error:
        raise _sqlite_problem(first, where) from None


def _probe(uri: str) -> sqlite3.Connection:
    """Connect read-only and read once (SQLite opens lazily: the problems show here)."""
    db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=10.0)
    try:
        db.execute("PRAGMA query_only=ON")
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        db.close()
        raise
    return db


def _sqlite_problem(exc: sqlite3.Error, where: Location) -> LedgerError:
    """An SQLite error met while opening a ledger, in the user's words."""
    if isinstance(exc, sqlite3.OperationalError):  # cannot open, locked past the timeout, I/O error
        return LedgerError(f"cannot open the ledger: {exc}", location=where,
                           hint="pass a readable path with --state or SEEDANCE_STATE")
    return LedgerError(f"not a seedance-batch ledger ({exc})", location=where,  # not a database, or damaged
                       hint="point --state at another file, or move this one away")


@contextmanager
def _worded(db: sqlite3.Connection, where: Location) -> Iterator[None]:
    """While a ledger is being opened: any failure closes ``db``; SQLite's errors become one LedgerError."""
    try:
        yield
    except sqlite3.Error as exc:
        db.close()
        raise _sqlite_problem(exc, where) from None
    except BaseException:
        db.close()
        raise


def _refuse_unwritable(path: Path, where: Location) -> None:
    """A run must write its ledger (and SQLite its -wal and -shm beside it): say so plainly when it cannot."""
    if not path.exists():
        return  # created next; a folder that cannot be made is worded there
    real = path.resolve()
    if os.access(real, os.W_OK) and os.access(real.parent, os.W_OK | os.X_OK):
        return
    read_only = bool(os.statvfs(real.parent).f_flag & os.ST_RDONLY)
    why = "it is on a read-only file system" if read_only else "it or its folder is not writable"
    raise LedgerError(f"cannot write the ledger: {why}", location=where,
                      hint="a run records every submit there: pass a writable --state "
                           "(status, plan and report can read this one as it is)")


class SqliteLedger:
    """The campaign state in one SQLite file. Safe to share between threads.

    Each write method is one committed transaction: the row's new state and its
    event together. Transitions name the states they may start from, so a late
    or duplicate report (a webhook after the poll, say) never moves a job back.
    """

    def __init__(self, db: sqlite3.Connection, path: Path, *, read_only: bool = False) -> None:
        self._db = db
        self._lock = threading.RLock()
        self._run_lock: int | None = None
        self.path = path
        self.read_only = read_only
        self._where = Location(file=str(path))
        try:
            self._inode, self._fd = _RUN_LOCKS.enter(path)
        except OSError as exc:
            db.close()
            raise LedgerError(f"cannot open the ledger: {exc.strerror}", location=self._where,
                              hint="pass a readable path with --state or SEEDANCE_STATE") from None
        self._closed = False

    @property
    def location(self) -> str:
        """The database file, as the user named it."""
        return str(self.path)

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> SqliteLedger:
        """Open for a run (creating it and its folder if needed) and migrate the ledger at ``path``.

        A file that is not a ledger is refused before anything is written to it.
        """
        path = Path(path)
        where = Location(file=str(path))
        _refuse_unwritable(path, where)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the ledger: {exc}", location=where,
                              hint="pass a writable path with --state or SEEDANCE_STATE") from None
        with _worded(db, where):
            applied_migrations(db, where)  # reads only: a database of another program stays as it was
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            migrate(db, where)
            check_shape(db, where)
        return cls(db, path)

    @classmethod
    def open_read_only(cls, path: str | os.PathLike[str]) -> SqliteLedger | None:
        """Open the ledger at ``path`` only to read it; None when there is none there yet.

        No file, an empty file or an empty database is "none yet" (nothing is created).
        Nothing is ever written, not even a migration; a ledger on a read-only file
        system is read too. Reading it while a run writes is safe (WAL).
        """
        path = Path(path)
        where = Location(file=str(path))
        if not path.exists():
            return None
        db = _connect_read_only(path, where)
        with _worded(db, where):
            applied = applied_migrations(db, where)
            if applied and len(applied) < len(MIGRATIONS):
                raise LedgerError("this ledger was written by an older seedance-batch and needs migrating",
                                  location=where, hint="a run migrates it (status, plan and report only read)")
            if applied:
                check_shape(db, where)
        if not applied:
            db.close()
            return None
        return cls(db, path, read_only=True)

    def close(self) -> None:
        """Close the connection and drop the run lock (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self.release_run_lock()
            self._db.close()
            self._closed = True
            _RUN_LOCKS.leave(self._inode, self._fd)  # after the connection: see _RunLocks

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
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LedgerError("another seedance-batch run is using this ledger", location=self._where,
                              hint="wait for it to finish, or give this run its own --state") from None
        except OSError as exc:
            raise LedgerError(f"cannot lock the ledger: {exc.strerror}", location=self._where,
                              hint="keep the ledger on a local file system") from None
        self._run_lock = self._fd

    def release_run_lock(self) -> None:
        """Give the ledger back (idempotent). The descriptor stays open: see :class:`_RunLocks`."""
        if self._run_lock is not None:
            fcntl.flock(self._run_lock, fcntl.LOCK_UN)
            self._run_lock = None

    def __enter__(self) -> SqliteLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
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
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the failure being reported matters more

    # --- reading ---------------------------------------------------------------------------

    def records(self, campaign: str) -> list[JobRecord]:
        """Every row of a campaign, oldest first."""
        with self._lock:
            rows = self._db.execute(f"{_SELECT} WHERE campaign = ? ORDER BY rowid", (campaign,)).fetchall()
        return [_to_record(row, self._where) for row in rows]

    def record(self, campaign: str, key: str) -> JobRecord | None:
        """One job's row, or None."""
        with self._lock:
            row = self._db.execute(f"{_SELECT} WHERE campaign = ? AND key = ?", (campaign, key)).fetchone()
        return _to_record(row, self._where) if row else None

    def by_task_id(self, task_id: str) -> JobRecord | None:
        """The row holding ``task_id`` (a task id this ledger submitted), or None."""
        with self._lock:
            row = self._db.execute(f"{_SELECT} WHERE task_id = ?", (task_id,)).fetchone()
        return _to_record(row, self._where) if row else None

    def events(self, campaign: str) -> list[Event]:
        """The campaign's audit trail, in the order it happened."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, campaign, key, label, at, kind, state, task_id, detail FROM events "
                "WHERE campaign = ? ORDER BY id", (campaign,),
            ).fetchall()
        return [_to_event(row, self._where) for row in rows]

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
            found = [_to_record(row, self._where) for row in rows]
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
        """The service answered with a task id: commit it before anything else happens.

        Moves the row from ``submitting``, or from ``unknown``: a row made unknown
        meanwhile (a recovery elsewhere) whose task exists after all, which is good
        news. False when the row already holds this very task id (a repeat). Any other
        refusal would drop a task the service created (and billed): the id is committed
        to the audit trail (event ``task_refused``), then :class:`LedgerError` names it.
        """
        stamp = now_iso()
        with self._tx() as db:
            row = db.execute("SELECT state, task_id, label FROM jobs WHERE campaign = ? AND key = ?",
                             (campaign, key)).fetchone()
            state, held, label = row if row else (None, None, "")
            label = label if isinstance(label, str) else str(label)
            if state in (JobState.SUBMITTING.value, JobState.UNKNOWN.value):
                fields: dict[str, Any] = {"task_id": task_id, "api_status": api_status, "submitted_at": stamp}
                if state == JobState.UNKNOWN.value:
                    fields.update(error_class=None, error_message=None)
                self._write(db, campaign, key, label, held, JobState.SUBMITTED, "submitted", fields,
                            {"was": state} if state == JobState.UNKNOWN.value else None)
                return True
            if held == task_id:
                return False
            self._event(db, campaign, key, label, "task_refused", None, task_id,
                        {"api_status": api_status, "row_state": state, "row_task_id": held}, stamp)
        why = "missing" if row is None else f"{_shown(state)}" + (f" with task {_shown(held)}" if held else "")
        raise LedgerError(f"task {one_line(task_id)} cannot go on this job's row (it is {why}, not submitting); "
                          "the task id is kept in the ledger's events (task_refused)",
                          location=replace(self._where, job=_shown(label) if label else None),
                          hint="check that task in APIDot's dashboard before submitting this job again")

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
            rec = _to_record(row, self._where)
            if rec.state not in allowed:
                return False
            self._set(db, rec, state, kind, fields, detail)
        return True

    def _set(self, db: sqlite3.Connection, rec: JobRecord, state: JobState, kind: str,
             fields: Mapping[str, Any], detail: Mapping[str, Any] | None = None) -> None:
        self._write(db, rec.campaign, rec.key, rec.label, rec.task_id, state, kind, fields, detail)

    def _write(self, db: sqlite3.Connection, campaign: str, key: str, label: str, task_id: str | None,
               state: JobState, kind: str, fields: Mapping[str, Any], detail: Mapping[str, Any] | None) -> None:
        """Update one row (``task_id`` is the one it held) and append its event, in ``db``'s transaction."""
        stamp = now_iso()
        values = {**fields, "state": state.value, "updated_at": stamp}
        assignments = ", ".join(f"{name} = ?" for name in values)
        db.execute(f"UPDATE jobs SET {assignments} WHERE campaign = ? AND key = ?", (*values.values(), campaign, key))
        info = {k: v for k, v in fields.items() if k in ("error_class", "error_message", "api_status")}
        self._event(db, campaign, key, label, kind, state, fields.get("task_id", task_id),
                    {**info, **(detail or {})}, stamp)

    @staticmethod
    def _event(db: sqlite3.Connection, campaign: str, key: str, label: str, kind: str,
               state: JobState | None, task_id: str | None, detail: Mapping[str, Any], at: str) -> None:
        db.execute(
            "INSERT INTO events (campaign, key, label, at, kind, state, task_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (campaign, key, label, at, kind, state.value if state else None, task_id,
             json.dumps(detail, separators=(",", ":"), default=str)),
        )
