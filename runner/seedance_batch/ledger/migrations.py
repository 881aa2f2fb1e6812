"""The ledger's schema history: ordered, named migrations, the same names in every backend.

Shaped after simonw/llm's ``migrations.py``: each migration is a function named after
the change, applied once, in order, in its own transaction, its name recorded in the
ledger's ``_migrations`` table. What is shared by every backend is the list of names
(:data:`MIGRATIONS`, the schema's history) and what a name means: a ledger listing a
migration this version does not know was written by a newer seedance-batch and is
refused rather than misread (:func:`known_migrations`). Each backend writes its own
DDL for each name, registered with a :class:`Steps` decorator (SQLite:
:mod:`.sqlite.schema`), and :meth:`Steps.in_order` checks at import that it has one
for every name, no more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from ..errors import LedgerError, Location
from ..safetext import bound, one_line

__all__ = ["ADDITIVE", "MIGRATIONS", "Steps", "known_migrations", "shown_names"]

# Append only; never rename or reorder (the names are what a ledger records).
MIGRATIONS: tuple[str, ...] = (
    "m001_jobs_and_events",  # the jobs table (one row per job) and the events table (the audit trail)
    "m012_decisions",  # the review's decisions: their append-only history and the current one per job
    "m011_callback_tokens",  # digests of the runs' webhook secrets (for `receive`), and an index for event cursors
    "m013_media_checks",  # the source media cache: what a media host said about each URL (by its hash)
    "m010_claims",  # many runners: a job's owner, the runners' leases, the account's submit schedule
)

# Migrations that only add tables of their own. A read-only opening (status, plan, report)
# of a ledger that lacks them reads it as it is, their tables as empty: nothing was decided
# before the table existed. Any other missing migration means "a run migrates it first".
ADDITIVE: frozenset[str] = frozenset({"m012_decisions", "m011_callback_tokens", "m013_media_checks",
                                      "m010_claims"})

Step = TypeVar("Step", bound=Callable[..., None])

# How many names a message shows (enough to recognise them), and how much of each: outside text.
_SHOWN_NAMES = 3
_SHOWN_NAME_CHARS = 60


class Steps(Generic[Step]):
    """One backend's DDL per migration name; ``@steps`` registers a function under its own name."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._by_name: dict[str, Step] = {}

    def __call__(self, step: Step) -> Step:
        self._by_name[step.__name__] = step
        return step

    def in_order(self) -> tuple[tuple[str, Step], ...]:
        """``(name, step)`` in :data:`MIGRATIONS` order; a name missing or unknown here is a bug."""
        if set(self._by_name) != set(MIGRATIONS):
            raise RuntimeError(f"{self.backend} ledger migrations {sorted(self._by_name)} are not {list(MIGRATIONS)}")
        return tuple((name, self._by_name[name]) for name in MIGRATIONS)


def known_migrations(applied: Iterable[str], where: Location) -> tuple[str, ...]:
    """The applied migrations, in order; a ledger with one this version does not know is refused."""
    applied = set(applied)
    newer = sorted(applied - set(MIGRATIONS))
    if newer:
        raise LedgerError(
            f"this ledger was written by a newer seedance-batch (schema {shown_names(newer[-1:])})", location=where,
            hint="upgrade seedance-batch (pip install -U seedance-batch), or use another --state file",
        )
    return tuple(name for name in MIGRATIONS if name in applied)


def shown_names(names: Iterable[str]) -> str:
    """A few names found in a ledger, safe to print on one line."""
    ordered = sorted(names)
    shown = ", ".join(one_line(bound(name, _SHOWN_NAME_CHARS)) for name in ordered[:_SHOWN_NAMES])
    return shown + (f" and {len(ordered) - _SHOWN_NAMES} more" if len(ordered) > _SHOWN_NAMES else "")
