"""The account's limits kept in a shared ledger: every runner's submits on one schedule, one budget.

With a ledger several runners share (PostgreSQL), a runner's own pacer and in-flight
slots only see its own calls; the account's limits are for all of them together. Each
claim of a runner (:meth:`~seedance_batch.ledger.api.Ledger.claim`) carries its
:class:`~seedance_batch.ledger.claims.ClaimTerms`: the campaign's budget and the
account's in-flight limit, both checked by the ledger in the claim's own transaction,
and the interval of the account's submit schedule, of which a winning claim takes the
next turn (one row, on the database's clock): turns are ``1.03 / rate`` apart whoever
claims, so the combined rate stays within ``run.submits_per_minute`` and no runner
needs to know how many others there are. The claim comes first, then the wait for its
turn, then the POST: the turn is taken in the claim's statement, so a claim that waited
in the runner's queue to the database does not bunch its submit with the others'.

:class:`SharedPacer` is what the submit loop sees of it, in place of the runner's own
:class:`~.ratelimit.Pacer` (the same ``acquire``, ``succeeded``, ``slow_down`` and
counts): it keeps the schedule's interval, pushes the whole schedule back after a 429
(Retry-After, else a tenth of the server's window: every runner waits), and remembers
which jobs the runners have claimed, as each claim's answer says.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

import anyio

from ..ledger.aio import AsyncLedger
from ..ledger.claims import Claim, ClaimTerms
from .ratelimit import PROBES_PER_WINDOW

__all__ = ["SAFETY", "SharedPacer", "SubmitPacer"]

# Turns 3% wider than the limit (a runner's own pacer: 2%): a submit sent a little late must not
# land a fixed window's last turn in the next one, whichever runner sends it.
SAFETY = 1.03


class SubmitPacer(Protocol):
    """What the submit loop needs of a pacer (:class:`~.ratelimit.Pacer` or :class:`SharedPacer`)."""

    decreases: int
    limited: int

    @property
    def ceiling(self) -> float | None: ...

    async def acquire(self) -> None: ...

    def succeeded(self, sent_at: float | None = None) -> None: ...

    def slow_down(self, retry_after: float | None, sent_at: float | None = None) -> None: ...


class SharedPacer:
    """The account's submit schedule as one runner takes part in it, ``per_minute`` (real minutes) for all.

    ``window``: the server's rate window in real seconds (the pause after a 429 without
    Retry-After is a tenth of it).
    """

    def __init__(self, ledger: AsyncLedger, per_minute: float, *, window: float | None = None) -> None:
        if per_minute <= 0:
            raise ValueError(f"per_minute must be above 0, got {per_minute!r}")
        self._ledger = ledger
        self.interval = SAFETY * 60.0 / per_minute
        self.window = window
        self._pause: float | None = None  # a 429's pause, pushed to the schedule before the next claim
        # Held from a claim until its turn: a runner never holds turns ahead, so a kill -9 leaves at most
        # the one claimed job waiting (and those in the air) unknown.
        self.one_at_a_time = anyio.Lock()
        self.claimed: set[str] = set()  # the campaign's jobs the runners claimed, as the claims' answers said
        self.cursor = 0  # the newest claim's event id seen
        self.admitted = 0
        self.decreases = 0  # the schedule's rate is the account's: never lowered here
        self.limited = 0

    @property
    def ceiling(self) -> float | None:
        """Nothing learned: the schedule's rate is the one configured."""
        return None

    def terms(self, owner: str, max_usd: Decimal | None, max_in_flight: int) -> ClaimTerms:
        """What this runner's next claim carries."""
        return ClaimTerms(owner=owner, interval=self.interval, max_usd=max_usd, max_in_flight=max_in_flight,
                          after=self.cursor)

    async def acquire(self) -> None:
        """Before a claim: a 429's pause, if one came, pushed to the schedule (the claim itself takes the turn)."""
        pause, self._pause = self._pause, None
        if pause is not None:
            await self._ledger.delay_turns(pause)

    async def wait_turn(self, claim: Claim) -> None:
        """What the claim's answer said: the others' claims noted, then its turn waited for."""
        self.claimed.update(claim.claimed)
        self.cursor = max(self.cursor, claim.cursor)
        self.admitted += 1
        if claim.wait > 0:
            await anyio.sleep(claim.wait)

    def claimed_now(self, key: str) -> bool:
        """Whether a runner (this one too) has claimed the job, as far as the claims' answers said."""
        return key in self.claimed

    def succeeded(self, sent_at: float | None = None) -> None:
        """A submit went through (the schedule needs nothing more)."""

    def slow_down(self, retry_after: float | None, sent_at: float | None = None) -> None:
        """A 429: every runner's next turns wait for the pause (Retry-After, else a tenth of the window)."""
        self.limited += 1
        pause = retry_after if retry_after is not None else (self.window or self.interval * PROBES_PER_WINDOW) \
            / PROBES_PER_WINDOW
        self._pause = max(pause, self._pause or 0.0)
