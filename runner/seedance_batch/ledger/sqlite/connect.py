"""Opening a SQLite ledger file: for a run (writable, migrated) or only to look (never written).

Storage: one SQLite file in WAL mode (readers never block the writer), with
``synchronous=NORMAL``: a committed transaction survives the process being killed at
any instant (``kill -9``); only a power cut could lose the last few.

A file that is not a ledger is refused before anything is written to it, and every
SQLite error met while opening becomes one :class:`LedgerError` in the user's words.
A read-only opening never writes: no migration, no ``-wal`` or ``-shm`` created where
they cannot be, and a ledger on a read-only file system is read too.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ...errors import LedgerError, Location
from ..migrations import ADDITIVE
from .schema import STEPS, applied_migrations, check_shape, migrate

__all__ = ["connect_for_run", "connect_read_only"]

# SQLite's words for "the WAL index cannot be shared here": a read-only folder lacking the
# ledger's -shm or -wal file (SQLite can neither create nor lock them). Not any other
# READONLY error: a hot rollback journal, say, must not be read past.
_NO_SHARED_INDEX = ("SQLITE_CANTOPEN", "SQLITE_READONLY_CANTINIT")
# How long a statement waits for another process's write to end before it is an error.
_BUSY_SECONDS = 10.0


def connect_for_run(path: Path, where: Location) -> sqlite3.Connection:
    """A writable connection to the ledger at ``path``, created (with its folder) and migrated as needed."""
    _refuse_unwritable(path, where)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=_BUSY_SECONDS)
    except (OSError, sqlite3.Error) as exc:
        raise LedgerError(f"cannot open the ledger: {exc}", location=where,
                          hint="pass a writable path with --state or SEEDANCE_STATE") from None
    with _worded(db, where):
        applied_migrations(db, where)  # reads only: a database of another program stays as it was
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        migrate(db, where)
        check_shape(db, where)
    return db


def connect_read_only(path: Path, where: Location) -> sqlite3.Connection | None:
    """A connection that cannot write the ledger at ``path``; None when there is none there yet.

    No file, an empty file or an empty database is "none yet" (nothing is created). A
    ledger an older version wrote, not migrated yet, is refused: a run migrates it.
    """
    if not path.exists():
        return None
    db = _connect_read_only(path, where)
    with _worded(db, where):
        applied = applied_migrations(db, where)
        # Tables a newer version only added are read as empty (see ADDITIVE); any other gap needs a run.
        if applied and {name for name, _ in STEPS} - set(applied) - ADDITIVE:
            raise LedgerError("this ledger was written by an older seedance-batch and needs migrating",
                              location=where, hint="a run migrates it (status, plan and report only read)")
        if applied:
            check_shape(db, where, applied)
    if not applied:
        db.close()
        return None
    return db


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
    db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=_BUSY_SECONDS)
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
