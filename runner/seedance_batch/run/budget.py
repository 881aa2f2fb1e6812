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

__all__ = ["Budget", "LedgerBudget", "LocalBudget"]


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

    @property
    def in_claim(self) -> Decimal | None:
        """The budget each claim carries to the ledger, which reserves it in the claim's transaction
        (None: this budget is held here, in memory)."""
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

    @property
    def in_claim(self) -> Decimal | None:
        return None

    async def reserve(self, cost: Decimal) -> bool:
        if self._limit is not None and self._spent + self._held + cost > self._limit:
            return False
        self._held += cost
        return True

    async def settle(self, cost: Decimal, *, charged: bool) -> None:
        self._held -= cost
        if charged:
            self._spent += cost


class LedgerBudget(LocalBudget):
    """The campaign's budget on a ledger several runners share: reserved by each claim, in the database.

    The claim itself (``begin_submit`` with ``max_usd``) is refused when the campaign's
    charged rows, every runner's, plus the job's price would pass the limit (see
    :mod:`~seedance_batch.ledger.claims`), so nothing is held here: :meth:`reserve` always
    holds, and the figures kept are this runner's own, for its progress and summary.
    """

    @property
    def in_claim(self) -> Decimal | None:
        return self.limit

    async def reserve(self, cost: Decimal) -> bool:
        self._held += cost  # the claim decides; held here only for this runner's figures
        return True
