"""One opened PostgreSQL ledger's connection: one call at a time, reconnected when it was lost.

Every operation of the backend runs through :meth:`Session.run`: under a lock (the run's
worker thread and the webhook receiver's share one ledger), on a live connection (a
lost one is replaced first), inside a ``READ ONLY`` transaction for a read-only
opening. A database error becomes one LedgerError in the user's words
(:mod:`.connection`).

A lost connection (the server restarted, the network dropped, an administrator ended
the session) is retried once on a new connection when the call is safe to make twice:
a read, or a write that finds its own earlier commit as a repeat (every transition but
a claim). A claim is never retried: had its commit gone through before the loss, the
retry would find the job claimed and call it somebody else's. It ends the run instead
(exit 5), before its POST is sent, so nothing is paid. When the database stays
unreachable the retry fails too, and the run stops with what it has committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg

from ...errors import LedgerError
from .connection import Connection, connect, failed, is_lost
from .target import Target

__all__ = ["FairLock", "Session"]

T = TypeVar("T")


class Session:
    """A ledger's connection and the rules for using it (see the module)."""

    def __init__(self, target: Target, conn: Connection, *, read_only: bool) -> None:
        self.target = target
        self.read_only = read_only
        self._conn: Connection | None = conn
        # First come, first served: a runner's lease renewals (their own thread) must not starve behind
        # its busy run's calls, as an unfair lock lets the thread that just released it take it again.
        self._lock = FairLock()
        self._closed = False
        self._lost = False  # the connection was lost: the next one replaces it (and says so if it cannot)

    def run(self, work: Callable[[Connection], T], *, write: bool = False, retry: bool = True) -> T:
        """``work(connection)``, as one call of the ledger (see the module for what is retried)."""
        with self._lock:
            if write and self.read_only:  # a bug, not a user's mistake: the looking commands never write
                raise LedgerError("this ledger was opened read-only: nothing may be written",
                                  location=self.target.where)
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    if self.read_only:
                        with conn.transaction():
                            return work(conn)
                    return work(conn)
                except psycopg.Error as exc:
                    lost = is_lost(exc, conn)
                    if lost:
                        self._lost = True
                        self._drop()
                    if not (lost and retry and attempt == 1):
                        raise failed(exc, self.target, lost=lost) from None
            raise AssertionError("unreachable: the second attempt returns or raises")

    def close(self) -> None:
        """Close the connection (idempotent); a closed session connects no more."""
        with self._lock:
            self._drop()
            self._closed = True

    def _connection(self) -> Connection:
        if self._closed:
            raise LedgerError("this ledger was closed", location=self.target.where)
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop()
            self._conn = connect(self.target, read_only=self.read_only, again=self._lost)
            self._lost = False
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class FairLock:
    """A re-entrant lock granted in the order it was asked for (a ticket lock)."""

    def __init__(self) -> None:
        self._turns = threading.Condition(threading.Lock())
        self._next = 0      # the ticket the next asker gets
        self._serving = 0   # the ticket whose holder may go
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> FairLock:
        me = threading.get_ident()
        with self._turns:
            if self._owner == me:
                self._depth += 1
                return self
            ticket, self._next = self._next, self._next + 1
            while self._serving != ticket:
                self._turns.wait()
            self._owner, self._depth = me, 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._turns:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._serving += 1
                self._turns.notify_all()
