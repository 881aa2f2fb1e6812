"""The ledger: the single source of truth of what was submitted, behind one interface.

Everyone outside this package uses :class:`Ledger` (the interface, :mod:`.api`), the
records it speaks and the job-state vocabulary (:mod:`.records`), the state machine every
backend follows (:mod:`.transitions`), :class:`AsyncLedger` from async code, and
:func:`open_ledger`, which picks the backend from the location the user gave
(``--state`` or ``$SEEDANCE_STATE``): a backend is a module here and a line in
:data:`BACKENDS`, keyed by URL scheme; a plain path is the embedded SQLite file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, overload

from ..errors import LedgerError
from .aio import AsyncLedger
from .api import Ledger
from .decisions import Decision, DecisionChange, Verdict
from .mediacache import CachedMedia, media_key
from .records import PLANNED, VOCABULARY, Event, JobRecord, JobState, StateInfo
from .sqlite import DEFAULT_PATH, STATE_ENV, SqliteLedger, default_path
from .transitions import RESUBMITTABLE, TRANSITIONS, Transition, TransitionRefused

__all__ = [
    "BACKENDS",
    "PLANNED",
    "RESUBMITTABLE",
    "TRANSITIONS",
    "VOCABULARY",
    "AsyncLedger",
    "Backend",
    "CachedMedia",
    "Decision",
    "DecisionChange",
    "Event",
    "JobRecord",
    "JobState",
    "Ledger",
    "SqliteLedger",
    "StateInfo",
    "Transition",
    "TransitionRefused",
    "Verdict",
    "default_path",
    "ledger_location",
    "media_key",
    "open_ledger",
    "shown_location",
]


@dataclass(frozen=True, slots=True)
class Backend:
    """How to open one kind of ledger: for a run (writes) and only to look (never writes)."""

    open: Callable[[str], Ledger]
    open_read_only: Callable[[str], Ledger | None]
    # The location as a user may see it (a URL without its password); a path as it is.
    shown: Callable[[str], str] = str


def _sqlite_backend() -> Backend:
    return Backend(open=lambda where: SqliteLedger.open(_sqlite_path(where)),
                   open_read_only=lambda where: SqliteLedger.open_read_only(_sqlite_path(where)))


def _postgres_backend() -> Backend:
    # Imported here: psycopg loads only for a PostgreSQL ledger, never for validate or a SQLite run.
    try:
        from .postgres import PostgresLedger, shown_url
    except ImportError as exc:
        raise LedgerError(f"the PostgreSQL driver cannot be loaded ({exc.msg})",
                          hint="pip install 'psycopg[binary]' (a dependency of seedance-batch)") from None
    return Backend(open=PostgresLedger.open, open_read_only=PostgresLedger.open_read_only, shown=shown_url)


def _sqlite_path(location: str) -> str:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL (SQLAlchemy's spelling); a path as it is."""
    prefix = "sqlite:///"
    return location[len(prefix):] if location.lower().startswith(prefix) else location


# URL scheme -> backend; anything that is not a URL of a listed scheme is a SQLite file path.
BACKENDS: dict[str, Callable[[], Backend]] = {
    "sqlite": _sqlite_backend,
    "postgresql": _postgres_backend,  # libpq's two spellings, one backend
    "postgres": _postgres_backend,
}


def ledger_location(explicit: str | os.PathLike[str] | None = None) -> str:
    """Where the ledger is: ``--state`` > ``$SEEDANCE_STATE`` > ``.seedance/ledger.sqlite``."""
    if explicit:
        return os.fspath(explicit)
    return os.environ.get(STATE_ENV) or str(DEFAULT_PATH)


def shown_location(location: str | os.PathLike[str]) -> str:
    """``location`` as the user may see it: a ledger URL without its password, a path as it is."""
    backend, where = _backend(os.fspath(location))
    return backend.shown(where)


def _backend(location: str) -> tuple[Backend, str]:
    scheme = location.partition("://")[0].lower() if "://" in location else ""  # urlsplit fails on a bad [host]
    if scheme and scheme in BACKENDS:
        return BACKENDS[scheme](), location
    return BACKENDS["sqlite"](), location


@overload
def open_ledger(location: str | os.PathLike[str], *, read_only: Literal[False] = False) -> Ledger: ...
@overload
def open_ledger(location: str | os.PathLike[str], *, read_only: Literal[True]) -> Ledger | None: ...
def open_ledger(location: str | os.PathLike[str], *, read_only: bool = False) -> Ledger | None:
    """The ledger at ``location`` for a run (created when missing, migrated, writable), or
    with ``read_only`` only to look: never written, and None when there is none yet."""
    backend, where = _backend(os.fspath(location))
    return backend.open_read_only(where) if read_only else backend.open(where)
