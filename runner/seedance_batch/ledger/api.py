"""The ledger's interface: what the plan, the run, the reports and the webhook receiver use.

Every backend (SQLite embedded, a shared database for teams) implements :class:`Ledger`;
nothing outside :mod:`seedance_batch.ledger` imports a backend. A shared test suite
(tests/test_ledger_contract.py) holds every backend to what is written here.

What holds when several processes use one ledger at once:

- Each write is one committed transaction: the row's new state together with its line
  in the audit trail. Nothing half-written is ever seen.
- Each write moves a job's row only from the states :data:`~.transitions.TRANSITIONS`
  names, checked and moved in one step, so of two processes making the same move
  exactly one does it. A write that finds the row already where it would put it is a
  *repeat*: nothing is written and it returns False. Any other is *refused*:
  :class:`~.transitions.TransitionRefused` (a :class:`~seedance_batch.errors.LedgerError`
  naming the job), never a silently ignored False. A late or repeated report therefore
  never moves a job backwards, and is loud when it contradicts the ledger.
- A submit is claimed (:meth:`Ledger.begin_submit`) only from no row or ``pending``, and
  from ``failed`` or ``unknown`` only when the caller says so (``resubmit``: the user's
  ``--retry-failed``/``--resubmit-unknown``); never over another's ``submitting``, a task
  that exists, or a rendered job. So two runners never both pay for one job.
- A task id the service created is never dropped: if its row cannot take it, the id is
  committed to the audit trail (``task_refused``) before the refusal is raised.
- Read-only openings (``status``, ``plan``, ``report``) never write: they neither migrate,
  nor recover, nor take the run lock; every write method raises LedgerError on them.
- A ledger several runners share (:attr:`Ledger.shared`) keeps what they share in its rows
  (:mod:`.claims`): each runner's lease on the database's clock, the owner of each claim,
  the campaign's budget and the account's limits checked in each claim's transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol

from .claims import Claim, ClaimTerms, TakenOver
from .copying import CopyCounts
from .decisions import Decision, DecisionChange
from .mediacache import CachedMedia
from .records import Event, JobRecord, JobState

__all__ = ["Ledger"]


class Ledger(Protocol):
    """One campaign store. Every write method is one committed transaction (see the module's rules)."""

    @property
    def location(self) -> str:
        """Where the ledger is, as the user may see it (a path; a URL without its password)."""
        ...

    # --- reading: never writes, safe while another process writes -----------------------------

    def records(self, campaign: str) -> list[JobRecord]:
        """Every row of a campaign, oldest first (an update keeps a row's place)."""
        ...

    def record(self, campaign: str, key: str) -> JobRecord | None:
        """One job's row, or None."""
        ...

    def by_task_id(self, task_id: str) -> JobRecord | None:
        """The row holding ``task_id`` (a task this ledger submitted), or None."""
        ...

    def events(self, campaign: str) -> list[Event]:
        """The campaign's audit trail, in the order it was committed."""
        ...

    # --- one run at a time, recovery --------------------------------------------------------

    def acquire_run_lock(self) -> None:
        """Claim the ledger for a run (idempotent); another live run holding it is a LedgerError.

        Freed when the run's process dies, however it dies. Refused on a read-only opening.
        A ledger shared by several runners (PostgreSQL) has no exclusive claim: it never
        locks another runner out (runners meet row by row: of two claims of a job, one wins).
        """
        ...

    def release_run_lock(self) -> None:
        """Give the run claim back (idempotent)."""
        ...

    def recover(self) -> list[JobRecord]:
        """Turn every ``submitting`` row left by a run that died into ``unknown``; return them.

        Only with the run claim (taken for the call when not held): while another live run
        holds it, its ``submitting`` rows are live submits, and nothing is recovered ([]).
        A read-only opening never recovers ([]). A shared ledger never turns another live
        runner's ``submitting`` row into ``unknown``: it recovers only the rows of runners
        it knows are dead, and without such knowledge nothing ([]).
        """
        ...

    # --- many runners: leases, takeover, the account's submit schedule (see .claims) -----------

    @property
    def shared(self) -> bool:
        """Whether several runners may use this ledger at once (PostgreSQL): the run then keeps its
        claims, budget and the account's limits in it (one runner at a time holds a SQLite file)."""
        ...

    def companion(self) -> Ledger:
        """The same ledger on a connection of its own (the caller closes it), or this one where a
        backend has no connection to wait for (SQLite: ``self``). A runner renews its lease through
        it, so a renewal never waits behind the run's own calls on one connection."""
        ...

    def join(self, campaign: str, lease: float) -> str:
        """Register a runner of ``campaign`` leased ``lease`` seconds from the database's clock; its id."""
        ...

    def renew(self, runner: str, lease: float) -> bool:
        """Extend the runner's lease to ``lease`` seconds from now (the database's clock).

        False when it had run out (or the runner had left): its rows may have been taken
        over meanwhile; it is leased again all the same.
        """
        ...

    def leave(self, runner: str) -> None:
        """The runner ends (idempotent): its rows lose their owner, free to be taken over at once."""
        ...

    def take_over(self, campaign: str, runner: str, keys: Collection[str]) -> TakenOver:
        """The campaign's orphaned rows among ``keys`` (owner no live runner): ``runner`` owns the
        in-flight ones from now (to track), and the ``submitting`` ones become ``unknown``.

        Rows locked by another runner's takeover are skipped (taken by that one). Refused on a
        read-only opening.
        """
        ...

    def delay_turns(self, pause: float) -> None:
        """No turn of the account's submit schedule before ``pause`` seconds from now (a 429)."""
        ...

    # --- the life of a job: each write moves the row as TRANSITIONS says --------------------------

    def begin_submit(self, *, campaign: str, key: str, label: str, shot: str, request: Mapping[str, Any],
                     credits: int, cost_usd: Decimal, output_path: str | None,
                     resubmit: Collection[JobState] = ()) -> JobRecord:
        """Claim the job: ``submitting`` (attempts + 1), committed before the POST is sent; the row.

        From no row or ``pending``; from ``failed``/``unknown`` only when in ``resubmit``
        (any other state there is a ValueError). The default claims nothing the user did
        not ask for, so a forgotten ``resubmit`` is a refusal, never a second payment.
        Refused (:class:`~.transitions.TransitionRefused`) from any other state: of two
        processes claiming one job, exactly one gets it.
        """
        ...

    def claim(self, *, campaign: str, key: str, label: str, shot: str, request: Mapping[str, Any],
              credits: int, cost_usd: Decimal, output_path: str | None, terms: ClaimTerms,
              resubmit: Collection[JobState] = ()) -> Claim:
        """:meth:`begin_submit` for a runner among several (see :mod:`.claims`): the row claimed for
        ``terms.owner``, with its submit turn and the others' claims since ``terms.after``.

        Refused as :meth:`begin_submit` is (the row's state is judged first), then
        :class:`~.claims.OverBudget` when the campaign's charged rows (spent, in flight,
        unknown: :data:`~.claims.CHARGED_SQL`) plus ``cost_usd`` would pass ``terms.max_usd``,
        :class:`~.claims.AccountBusy` while ``terms.max_in_flight`` rows of the ledger are in
        flight (:data:`~.claims.IN_FLIGHT_LIMITED`). Both are checked in the claim's own
        transaction, serialised with every other claim of the ledger. A refused claim takes no turn.
        """
        ...

    def submitted(self, campaign: str, key: str, task_id: str, api_status: str | None) -> bool:
        """The service created ``task_id``: commit it before anything else happens.

        From ``submitting`` (or ``unknown``: recovered meanwhile, the task exists after
        all). False for a repeat (the row holds this very id); any other refusal first
        records the id in the audit trail (``task_refused``), then raises naming it.
        """
        ...

    def release(self, campaign: str, key: str, error_class: str, message: str) -> bool:
        """``submitting`` -> ``pending``: the service answered without a task, or nothing was sent."""
        ...

    def unknown(self, campaign: str, key: str, message: str) -> bool:
        """``submitting`` -> ``unknown``: the submit was sent and no answer came."""
        ...

    def failed(self, campaign: str, key: str, error_class: str, message: str, api_status: str | None = None) -> bool:
        """-> ``failed`` (from pending, submitting or in flight): the service said failed, or rejected it."""
        ...

    def status_seen(self, campaign: str, key: str, api_status: str) -> bool:
        """A status answer that only changes the service's word for the task (``running``...).

        From ``submitted`` or ``timed_out`` (which becomes ``submitted``); the same word
        again is a repeat.
        """
        ...

    def finished(self, campaign: str, key: str, file_url: str | None, *, source: str = "status") -> bool:
        """-> ``finished`` (from in flight): the file URL is recorded (downloaded next); again: a new URL."""
        ...

    def downloaded(self, campaign: str, key: str, output_path: str, size: int, sha256: str) -> bool:
        """``finished`` -> ``done``: the video is on disk under its final name, size and sha256 verified."""
        ...

    def timed_out(self, campaign: str, key: str, message: str) -> bool:
        """``submitted``/``finished`` -> ``timed_out``: run.timeout passed; the task id stays for a later run."""
        ...

    def note(self, campaign: str, key: str, kind: str, detail: Mapping[str, Any] | None = None) -> None:
        """Append an audit event without changing the row (a retry, a webhook delivery...)."""
        ...

    def refunded(self, campaign: str, key: str, task_id: str, credits: int, *, source: str = "status") -> bool:
        """The service says it refunded ``credits`` of the failed job's task ``task_id`` (see :mod:`.refunds`).

        One ``refunded`` line of the audit trail (the row itself is unchanged); every
        reading of the row's record carries it from then on (``refund_credits``,
        ``refund_usd``: the job's price pro rata; credits past the price count as the
        price). The same figure again, or 0 with none recorded, is a repeat (False);
        another figure replaces it. Refused (:class:`~.transitions.TransitionRefused`,
        operation ``refunded``) unless the row is failed and holds ``task_id``.
        """
        ...

    # --- webhook callbacks: the runs' secrets (as digests), a cursor over the events ------------

    def events_after(self, campaign: str, after: int, kinds: Collection[str], limit: int = 1000) -> list[Event]:
        """The campaign's events of ``kinds`` with an id above ``after``, in order, at most ``limit``.

        A runner's cursor over the webhook events a receiver wrote (in the run or a
        ``receive`` elsewhere): it keeps the last id it saw and asks again, cheaply.
        """
        ...

    def last_event_id(self, campaign: str) -> int:
        """The id of the campaign's newest event (0: none yet): where a new cursor starts."""
        ...

    def add_callback_token(self, campaign: str, digest: str) -> None:
        """Accept callbacks for ``campaign`` carrying the secret whose SHA-256 is ``digest`` (idempotent).

        Only the digest is stored, never the secret: the ledger is read by reports and people.
        """
        ...

    def revoke_callback_token(self, digest: str) -> None:
        """The run that minted the secret has ended: its callbacks are no longer accepted (idempotent)."""
        ...

    def callback_tokens(self) -> dict[str, str]:
        """Every digest not revoked, and the campaign whose callbacks carry its secret."""
        ...

    # --- the source media cache, by URL hash (see .mediacache) ---------------------------------

    def media_checks(self, url_hashes: Collection[str]) -> dict[str, CachedMedia]:
        """The cached checks of these URL hashes that exist, by hash; read-only openings too (a
        ledger from before the cache reads as an empty one)."""
        ...

    def save_media_checks(self, entries: Collection[CachedMedia]) -> None:
        """Insert or replace each entry (by ``url_hash``), all in one transaction."""
        ...

    # --- the review's decisions (see .decisions) -----------------------------------------------

    def decide(self, campaign: str, key: str, change: DecisionChange, *, label: str, combination: str,
               reviewer: str) -> list[Decision]:
        """Apply one reviewer's ``change`` to the job's decision; the decisions it changed, the job's first.

        One transaction: the job's new decision (:func:`~.decisions.apply_change`) becomes
        its current one and a line of the campaign's history, stamped with ``reviewer``
        (checked: :func:`~.decisions.check_reviewer`, a ValueError) and the time. A pick
        unpicks every other take of ``combination`` in the same transaction (each gets
        its history line), so a campaign never has two picks in one combination. A change
        that changes nothing writes nothing. Refused (LedgerError) on a read-only opening.
        """
        ...

    def decisions(self, campaign: str) -> list[Decision]:
        """The campaign's current decisions, one per job decided, in the order first decided;
        read-only openings too (a ledger from before the review has none)."""
        ...

    def decision_history(self, campaign: str) -> list[Decision]:
        """Every decision ever written for the campaign, in the order committed (append-only)."""
        ...

    # --- moving a campaign's history between ledgers (ledger copy; see .copying) --------------

    def campaigns(self) -> list[str]:
        """Every campaign this ledger holds a job's row or an event of, by name."""
        ...

    def copy_in(self, campaign: str, records: Sequence[JobRecord], events: Sequence[Event]) -> CopyCounts:
        """Write another ledger's history of ``campaign`` here, as it is, in one transaction.

        A job with no row here gets the record's row (its state, task id, money and stamps
        unchanged); a row here equal to the record is left alone; one that differs refuses
        the whole copy (LedgerError naming the job): nothing is written or overwritten. Each
        event this ledger does not hold yet (by content: everything but its id) is appended,
        in order. So a second copy of the same history writes nothing. Refused on a
        read-only opening.
        """
        ...

    # --- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release the run claim and the connection (idempotent)."""
        ...

    def __enter__(self) -> Ledger: ...

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None: ...
