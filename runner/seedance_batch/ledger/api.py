"""The ledger's interface: what the plan, the run, the reports and the webhook receiver use.

Every backend (SQLite embedded, a shared database for teams) implements
:class:`Ledger`; nothing outside :mod:`seedance_batch.ledger` imports a backend. The
guarantees below hold when several processes use one ledger at once: each write is one
committed transaction (the row's new state together with its line in the audit trail),
and a transition names the states it may start from, so a late or repeated report never
moves a job backwards. A refused transition that would lose information (a task id the
service created) is loud: the id is written to the audit trail, then
:class:`~seedance_batch.errors.LedgerError` names it.

Read-only openings (``status``, ``plan``, ``report``) never write: they neither migrate,
nor recover, nor take the run lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol

from .records import Event, JobRecord

__all__ = ["Ledger"]


class Ledger(Protocol):
    """One campaign store. Every write method is one committed transaction."""

    @property
    def location(self) -> str:
        """Where the ledger is, as the user may see it (a path; a URL without its password)."""
        ...

    # --- reading ---------------------------------------------------------------------------

    def records(self, campaign: str) -> list[JobRecord]:
        """Every row of a campaign, oldest first."""
        ...

    def record(self, campaign: str, key: str) -> JobRecord | None:
        """One job's row, or None."""
        ...

    def by_task_id(self, task_id: str) -> JobRecord | None:
        """The row holding ``task_id`` (a task this ledger submitted), or None."""
        ...

    def events(self, campaign: str) -> list[Event]:
        """The campaign's audit trail, in the order it happened."""
        ...

    # --- one run at a time, recovery --------------------------------------------------------

    def acquire_run_lock(self) -> None:
        """Claim the ledger for a run; another live run holding it is a LedgerError."""
        ...

    def release_run_lock(self) -> None:
        """Give the run claim back (idempotent)."""
        ...

    def recover(self) -> list[JobRecord]:
        """Turn every ``submitting`` row left by a run that died into ``unknown``; return them.

        Never touches a live run's rows (none are recovered while another run holds the ledger).
        """
        ...

    # --- the life of a job ------------------------------------------------------------------

    def begin_submit(self, *, campaign: str, key: str, label: str, shot: str, request: Mapping[str, Any],
                     credits: int, cost_usd: Decimal, output_path: str | None) -> JobRecord:
        """Record ``submitting`` (attempts + 1), committed before the POST is sent."""
        ...

    def submitted(self, campaign: str, key: str, task_id: str, api_status: str | None) -> bool:
        """The service created ``task_id``: commit it before anything else happens.

        From ``submitting`` (or ``unknown``: recovered meanwhile, the task exists after
        all). False only for a repeat of the same id; any other refusal records the id
        in the audit trail and raises LedgerError naming it.
        """
        ...

    def release(self, campaign: str, key: str, error_class: str, message: str) -> bool:
        """Back to ``pending`` from ``submitting``: the service answered without a task."""
        ...

    def unknown(self, campaign: str, key: str, message: str) -> bool:
        """``submitting`` -> ``unknown``: the submit was sent and no answer came."""
        ...

    def failed(self, campaign: str, key: str, error_class: str, message: str, api_status: str | None = None) -> bool:
        """The service said failed, or rejected the request."""
        ...

    def status_seen(self, campaign: str, key: str, api_status: str) -> bool:
        """A status answer that only changes the service's word for the task (``running``...)."""
        ...

    def finished(self, campaign: str, key: str, file_url: str | None, *, source: str = "status") -> bool:
        """The service says finished; the file URL is recorded (downloaded next)."""
        ...

    def downloaded(self, campaign: str, key: str, output_path: str, size: int, sha256: str) -> bool:
        """The video is on disk under its final name, size and sha256 verified."""
        ...

    def timed_out(self, campaign: str, key: str, message: str) -> bool:
        """``run.timeout`` passed while tracking; the task id stays for a later run."""
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
