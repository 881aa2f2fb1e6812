"""Many runners on one ledger: runners' leases, claims with limits, the account's submit schedule.

What the Ledger Protocol's runner operations (:mod:`.api`) share across backends:

- A *runner* joins a campaign with a lease (``join``), renews it while it lives
  (``renew``) and leaves (``leave``). Leases are measured on the database's clock
  (PostgreSQL's ``now()``), never on the runners': their clocks may disagree. A runner
  that dies (kill -9, a cancelled CI job, a lost network) stops renewing, and its lease
  runs out: nothing is tied to a connection, so a connection pooler in transaction mode
  (PgBouncer) changes nothing.
- A job's row has an ``owner``: the runner that claimed it for a submit, or took over
  its tracking. A row whose owner is no live runner (its lease ran out, it left, or the
  row has none) is *orphaned*: ``take_over`` gives its in-flight rows to the caller
  (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: two runners taking over at once split the
  rows, never share one) and makes its ``submitting`` rows ``unknown`` (the POST may
  have gone out: never a second payment).
- A runner's claim (``claim``, :class:`ClaimTerms`) carries the campaign's budget and
  the account's in-flight limit; the database checks both in the claim's own
  transaction, serialised with every other claim of the ledger, so spent + in flight +
  unknown never passes the budget and in-flight rows never pass the limit, whatever the
  number of runners. A refusal is :class:`OverBudget` or :class:`AccountBusy`, never a
  silent False.
- The account's submit rate is one schedule row: the claim that wins also takes the next
  turn of it, ``interval`` after the last (never before now, on the database's clock),
  and says how long to wait for it; a claim refused takes none. No runner needs to know
  how many others there are. The same answer names the campaign's jobs every runner
  claimed since the caller last looked, so a runner skips those without asking.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..errors import LedgerError, Location
from .records import JobRecord, JobState

__all__ = ["CHARGED_SQL", "HELD", "IN_FLIGHT_LIMITED", "SUBMIT_SCOPE", "AccountBusy", "Claim", "ClaimLimited",
           "ClaimTerms", "OverBudget", "TakenOver", "account_busy", "check_lease", "over_budget"]

# The states that hold one of the account's in-flight places (as a runner's own slots do:
# from the claim until the download). A timed-out task is let go, as a runner lets it go.
IN_FLIGHT_LIMITED = (JobState.SUBMITTING, JobState.SUBMITTED, JobState.FINISHED)
# The states of a live runner's row that it will still move on: a takeover's ``waiting`` counts them
# (a released row, back to pending after a 429, is submitted again by its runner).
HELD = (JobState.PENDING, *IN_FLIGHT_LIMITED)
# What counts against a campaign's budget, as SQL over a jobs row (JobRecord.charged, less the
# refunds: ignoring a refund can only stop spending early, never let it pass the budget).
CHARGED_SQL = ("(state IN ('submitting', 'submitted', 'finished', 'done', 'timed_out', 'unknown') "
               "OR (state = 'failed' AND task_id IS NOT NULL))")
# The account's submit schedule's name (one account per ledger: a team shares its APIDot account).
SUBMIT_SCOPE = "submit"


class ClaimLimited(LedgerError):
    """A claim the ledger refused for a limit, not for the row's state: nothing was written."""


class OverBudget(ClaimLimited):
    """The claim would take the campaign's committed spending past its budget.

    ``committed``: spent + in flight + unknown when it was refused; ``limit``: the budget.
    """

    def __init__(self, message: str, *, location: Location, committed: Decimal, limit: Decimal) -> None:
        super().__init__(message, location=location)
        self.committed = committed
        self.limit = limit


class AccountBusy(ClaimLimited):
    """The account's in-flight limit is reached (by every runner together): claim again later."""


@dataclass(frozen=True, slots=True)
class TakenOver:
    """What :meth:`~.api.Ledger.take_over` did: the in-flight rows now the caller's to track, and the
    orphaned ``submitting`` rows it made ``unknown``; ``waiting``: the rows among the caller's keys
    that live runners still hold (:data:`HELD`)."""

    tracked: tuple[JobRecord, ...] = ()
    unknown: tuple[JobRecord, ...] = ()
    waiting: int = 0


@dataclass(frozen=True, slots=True)
class ClaimTerms:
    """What a claim of a runner among several carries (:meth:`~.api.Ledger.claim`).

    ``owner``: the runner (:meth:`~.api.Ledger.join`); ``max_usd``: the campaign's budget
    (None: none); ``max_in_flight``: the account's in-flight limit (None: none);
    ``interval``: seconds between two turns of the account's submit schedule; ``after``:
    the id of the newest ``submitting`` event the runner has seen (the claims after it are
    returned).
    """

    owner: str
    interval: float
    max_usd: Decimal | None = None
    max_in_flight: int | None = None
    after: int = 0


@dataclass(frozen=True, slots=True)
class Claim:
    """A claim made: the job's row (``submitting``), ``wait`` seconds until its submit turn, the keys
    of the campaign's other jobs claimed after ``ClaimTerms.after`` (every runner's, in order), and
    the newest claim's event id, this one's (``cursor``: where the runner looks from next)."""

    record: JobRecord
    wait: float
    claimed: tuple[str, ...] = ()
    cursor: int = 0


def check_lease(lease: float) -> float:
    """A lease length in seconds, refused (ValueError) unless above 0."""
    if not lease > 0:
        raise ValueError(f"a lease must be above 0 seconds, got {lease!r}")
    return float(lease)


def over_budget(committed: Decimal, cost: Decimal, limit: Decimal, where: Location, label: str) -> OverBudget:
    """The refusal of a claim of ``cost`` with ``committed`` already spent or held against ``limit``."""
    return OverBudget(f"{label}: ${cost} more would take the campaign past its budget "
                      f"(${committed} spent, in flight or unknown, of ${limit})", location=where,
                      committed=committed, limit=limit)


def account_busy(limit: int, where: Location) -> AccountBusy:
    """The refusal of a claim while ``limit`` jobs of the account are in flight."""
    return AccountBusy(f"the account has {limit} jobs in flight (run.max_in_flight, all runners together)",
                       location=where)
