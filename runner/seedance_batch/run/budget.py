"""The budget while a run submits: what is spent, what is held for submits in the air.

The plan refused a run that would cost more than the budget; the run checks again
before every submit, because what it spends is only known as it goes (a submit that
may have been sent counts as spent). Every submit first holds its cost
(:meth:`Budget.reserve`), then settles it: spent when a task was (or may have been)
created, let go when none was.

:class:`Budget` is the interface the submit loop uses. :class:`LocalBudget` keeps the
figures in memory, which is right for one runner; a ledger shared by several runners
keeps them in the database instead (one implementation more), so the budget holds for
the campaign, not per runner. The calls are async for that reason.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

__all__ = ["Budget", "LocalBudget"]


class Budget(Protocol):
    """The budget as the submit loop sees it."""

    @property
    def limit(self) -> Decimal | None:
        """The most the campaign may spend (None: no budget)."""
        ...

    @property
    def spent(self) -> Decimal:
        """Spent so far: before this run and by it (held amounts not included)."""
        ...

    async def reserve(self, cost: Decimal) -> bool:
        """Hold ``cost`` for one submit; False (nothing held) when spent + held + cost would pass the limit."""
        ...

    async def settle(self, cost: Decimal, *, charged: bool) -> None:
        """A submit held with :meth:`reserve` is over: ``charged`` (a task was, or may have been,
        created) turns the hold into spending; otherwise it is let go."""
        ...


class LocalBudget:
    """The budget of one runner, in memory."""

    def __init__(self, limit: Decimal | None, spent: Decimal) -> None:
        self._limit = limit
        self._spent = spent
        self._held = Decimal(0)

    @property
    def limit(self) -> Decimal | None:
        return self._limit

    @property
    def spent(self) -> Decimal:
        return self._spent

    async def reserve(self, cost: Decimal) -> bool:
        if self._limit is not None and self._spent + self._held + cost > self._limit:
            return False
        self._held += cost
        return True

    async def settle(self, cost: Decimal, *, charged: bool) -> None:
        self._held -= cost
        if charged:
            self._spent += cost
