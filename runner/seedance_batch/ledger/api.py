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
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol

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
        """
        ...

    def release_run_lock(self) -> None:
        """Give the run claim back (idempotent)."""
        ...

    def recover(self) -> list[JobRecord]:
        """Turn every ``submitting`` row left by a run that died into ``unknown``; return them.

        Only with the run claim (taken for the call when not held): while another live run
        holds it, its ``submitting`` rows are live submits, and nothing is recovered ([]).
        A read-only opening never recovers ([]).
        """
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

    # --- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release the run claim and the connection (idempotent)."""
        ...

    def __enter__(self) -> Ledger: ...

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None: ...
