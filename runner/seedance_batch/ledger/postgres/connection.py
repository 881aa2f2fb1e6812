"""Connecting to a PostgreSQL ledger, and every database error in the user's words.

One connection per opened ledger. A run's connection is in autocommit mode: each write
is one statement (a row's move and its audit line together, see :mod:`.statements`),
so one write is one round trip, and the rare write that must read first runs in an
explicit transaction. A read-only opening's transactions are ``READ ONLY``: the server
itself refuses a write, beside the backend's own guard.

Each error a user can meet is one :class:`~seedance_batch.errors.LedgerError` naming
the ledger by its URL without the password, and scrubbed of the password: the server
unreachable, the login refused, the database missing (:func:`cannot_connect`); the
connection lost mid-run, a role that may not write, a read-only standby, a value
PostgreSQL cannot store (:func:`failed`). A lost connection is told apart
(:func:`is_lost`) so the backend can reconnect for a write that is safe to repeat.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo

from ...errors import LedgerError
from .target import Target

__all__ = ["Connection", "cannot_connect", "connect", "failed", "is_lost"]

Connection = psycopg.Connection[tuple[Any, ...]]

# libpq names each address it tried ('connection to server at "h", port 5 failed: ...'); the
# ledger's URL already says where, so only what went wrong at the last one is kept.
_ATTEMPT = re.compile(r'connection to server (?:at|on socket) "[^"]*"(?:(?: \([^)]*\))?, port \d+)? failed: ')
_LOGIN = ("password authentication failed", "no password supplied", "no pg_hba.conf entry",
          "authentication failed", "role \"")
_RESUME = "everything committed is kept; run the same command again once the database is reachable"


def connect(target: Target, *, read_only: bool, again: bool = False) -> Connection:
    """A new connection to the ledger's database; any failure is one LedgerError (see :func:`cannot_connect`).

    ``again``: the ledger's connection was lost mid-run, and this replaces it.
    """
    try:  # keywords escaped by psycopg, never a URL: libpq quotes a URL's bad part (the password) back
        conn = psycopg.connect(make_conninfo("", **target.params), autocommit=not read_only)
    except psycopg.Error as exc:
        if again:
            raise LedgerError(f"lost the connection to the ledger's database, and connecting again failed: "
                              f"{_detail(exc, target)}", location=target.where, hint=_RESUME) from None
        raise cannot_connect(exc, target) from None
    # No server-side prepared statements (psycopg makes them after 5 uses): a pooler in transaction
    # mode (PgBouncer before 1.21) hands the next transaction another server session, which has none.
    conn.prepare_threshold = None
    if read_only:
        conn.read_only = True  # every transaction BEGIN READ ONLY: the server refuses writes too
    return conn


def cannot_connect(exc: psycopg.Error, target: Target) -> LedgerError:
    """Why a connection could not be made: unreachable, login refused, no such database."""
    detail = _detail(exc, target)
    lowered = detail.lower()
    if "does not exist" in lowered and "database" in lowered:
        return LedgerError(f"the ledger's database does not exist: {detail}", location=target.where,
                           hint="create it (createdb), or name another database in --state or SEEDANCE_STATE")
    if any(word in lowered for word in _LOGIN):
        return LedgerError(f"the ledger's database refused the login: {detail}", location=target.where,
                           hint="check the user and password (in the URL, PGPASSWORD or ~/.pgpass)")
    return LedgerError(f"cannot reach the ledger's database: {detail}", location=target.where,
                       hint="check the host and port in --state or SEEDANCE_STATE, and that the server is running")


def is_lost(exc: BaseException, conn: Connection) -> bool:
    """Whether ``exc`` means the connection is gone (the server stopped, the network dropped, an admin kill)."""
    if not isinstance(exc, psycopg.Error):
        return False
    sqlstate = exc.sqlstate or ""
    return bool(conn.broken or conn.closed or sqlstate.startswith(("08", "57P")))


def failed(exc: psycopg.Error, target: Target, *, lost: bool) -> LedgerError:
    """A statement that failed, in the user's words (the run stops on it: exit 5 mid-run)."""
    detail = _detail(exc, target)
    if lost:
        return LedgerError(f"lost the connection to the ledger's database: {detail}", location=target.where,
                           hint=_RESUME)
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return LedgerError(f"the database role may not use the ledger's tables: {detail}", location=target.where,
                           hint=f"grant it USAGE on schema {target.schema} and SELECT, INSERT, UPDATE on its tables "
                                "(status, plan and report need only SELECT)")
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        return LedgerError(f"the ledger's database is read-only: {detail}", location=target.where,
                           hint="point --state at the primary server, not a standby")
    if isinstance(exc, pg_errors.UndefinedTable):
        return LedgerError(f"the ledger's tables are gone: {detail}", location=target.where,
                           hint="someone dropped them while this ran; restore them, or start again on a new schema")
    if isinstance(exc, psycopg.DataError):
        return LedgerError(f"PostgreSQL cannot store this value: {detail}", location=target.where,
                           hint="nothing was changed for this write")
    return LedgerError(f"the ledger's database failed: {detail}", location=target.where, hint=_RESUME)


def _detail(exc: psycopg.Error, target: Target) -> str:
    """What libpq or the server said, for one line: the last address's failure, scrubbed of the password."""
    primary = exc.diag.message_primary if exc.sqlstate else None
    if primary:  # the server's own sentence, without psycopg's echo of the statement ("LINE 1: ...")
        return target.scrub(primary)
    text = str(exc).strip()
    attempts = _ATTEMPT.split(text)
    text = attempts[-1] if len(attempts) > 1 else text.removeprefix("connection failed: ")
    text = text.replace("FATAL:", "").replace("ERROR:", "").strip()
    first, _, rest = text.partition("\n")
    rest = " ".join(rest.split())
    if rest:  # libpq's second line is advice ("Is the server running on that host...?")
        first = f"{first.rstrip('.')} ({rest[0].lower()}{rest[1:]})"
    return target.scrub(first) or type(exc).__name__
