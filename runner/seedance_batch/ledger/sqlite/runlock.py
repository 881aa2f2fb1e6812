"""The run lock: one run at a time over a ledger file, whatever name it is reached by.

The lock is an ``flock`` on the database file itself (its inode), so every name of the
file (a symlink, a hard link, another relative path) meets the same lock, and the
kernel frees it when the process dies, even by ``kill -9``. On Linux ``flock`` locks
and SQLite's POSIX (``fcntl``) locks are separate and do not interfere. One trap is
avoided by design: closing *any* descriptor of the database file drops every POSIX
lock this process holds on it, SQLite's included (sqlite.org/howtocorrupt.html, 2.2).
So the lock's descriptors are closed only when no ledger of this process has the
file open any more (:class:`RunLocks`). ``flock`` over NFS is emulated with POSIX
locks and would clash: the ledger, like SQLite's WAL mode itself, wants a local file
system.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from ...errors import LedgerError, Location

__all__ = ["RUN_LOCKS", "RunLocks", "lock", "unlock"]

Inode = tuple[int, int]


class RunLocks:
    """The run lock's descriptors of the database files this process has open, per inode.

    Each open ledger has its own descriptor of its database file (its own open file
    description, so two ledgers of one process exclude each other like two
    processes). A descriptor is never closed while any ledger of this process still
    has that file open: closing it would silently drop SQLite's POSIX locks on the
    file (the SHARED lock a WAL connection keeps), and another process could then
    delete the write-ahead log under a live connection. Such descriptors wait in
    ``_idle`` for the next ledger of that file, and are all closed with the last one.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._users: dict[Inode, int] = {}
        self._idle: dict[Inode, list[int]] = {}

    def enter(self, path: Path) -> tuple[Inode, int]:
        """A descriptor of the database file at ``path`` for a ledger being opened, and its inode."""
        with self._guard:
            named = _inode(os.stat(path))
            idle = self._idle.get(named)
            fd = idle.pop() if idle else os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            inode = _inode(os.fstat(fd))  # the descriptor's own file, whatever the path names by now
            self._users[inode] = self._users.get(inode, 0) + 1
            return inode, fd

    def leave(self, inode: Inode, fd: int) -> None:
        """A ledger of this file was closed (its SQLite connection first): park or close ``fd``."""
        with self._guard:
            self._users[inode] -= 1
            parked = self._idle.setdefault(inode, [])
            parked.append(fd)
            if self._users[inode] == 0:
                del self._users[inode], self._idle[inode]
                for each in parked:
                    os.close(each)


RUN_LOCKS = RunLocks()


def _inode(stat: os.stat_result) -> Inode:
    return stat.st_dev, stat.st_ino


def lock(fd: int, where: Location) -> None:
    """Take the run lock on the database file open as ``fd``; another live run holding it is a LedgerError."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise LedgerError("another seedance-batch run is using this ledger", location=where,
                          hint="wait for it to finish, or give this run its own --state") from None
    except OSError as exc:
        raise LedgerError(f"cannot lock the ledger: {exc.strerror}", location=where,
                          hint="keep the ledger on a local file system") from None


def unlock(fd: int) -> None:
    """Give the run lock back. The descriptor stays open: see :class:`RunLocks`."""
    fcntl.flock(fd, fcntl.LOCK_UN)
