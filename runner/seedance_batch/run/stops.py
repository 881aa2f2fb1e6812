"""When a run stops submitting, and why: every such decision, in one place.

A run stops *submitting* (and keeps tracking what is in flight) when:

* the account cannot proceed (401/402): every later submit would fail the same way;
* the next job would take the spend past the budget;
* :attr:`~.settings.RunSettings.give_up_after` jobs in a row could not be submitted at
  all (the service or the network is down);
* a paid video could not be written (a full disk): more renders would not save either;
* the user pressed Ctrl-C once.

The first reason is the one shown. Ctrl-C twice (or SIGTERM) leaves at once: the
run's work is cancelled, and a submit in the air becomes ``unknown``. Signals are
caught by the pipeline, which calls :meth:`Stops.interrupt` and :meth:`Stops.leave`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from ..errors import AccountError
from .progress import Progress

__all__ = ["Stops"]


class Stops:
    """Why the run stopped submitting (None: it has not); what the exit code needs to know."""

    def __init__(self, progress: Progress, *, give_up_after: int) -> None:
        self._progress = progress
        self._give_up_after = give_up_after
        self.reason: str | None = None
        self.account_error: AccountError | None = None
        self.by_budget = False
        self.interrupted = False
        self._not_submitted_in_a_row = 0
        self._leave: Callable[[], None] | None = None
        self._left = False

    @property
    def submitting(self) -> bool:
        """No reason to stop has come up: the next job may be submitted."""
        return self.reason is None

    def _stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self._progress.note(reason)

    def account(self, error: AccountError) -> None:
        """401/402: nothing more can be submitted (or asked, for a 401)."""
        if self.account_error is None:
            self.account_error = error
        self._stop(f"stopped submitting: {error.format()}; tracking what is in flight")

    def budget(self, label: str, cost: Decimal, limit: Decimal) -> None:
        """The job ``label`` would take the spend past ``limit``."""
        self.by_budget = True
        self._stop(f"budget: {label} (${cost:.2f}) would take the spend past ${limit:.2f}; no more submits")

    def not_submitted(self, why: str) -> None:
        """A job's every submit attempt failed without a task; enough in a row stops the submits."""
        self._not_submitted_in_a_row += 1
        if self._not_submitted_in_a_row >= self._give_up_after:
            self._stop(f"stopped submitting: {self._not_submitted_in_a_row} jobs in a row could not be submitted "
                       f"({why}); tracking what is in flight; run again later")

    def submitted(self) -> None:
        """A submit went through: the service is reachable after all."""
        self._not_submitted_in_a_row = 0

    def cannot_save(self, output_dir: Path, why: str) -> None:
        """A paid video could not be written under ``output_dir``."""
        self._stop(f"stopped submitting: cannot write videos under {output_dir} ({why}); "
                   "tracking what is in flight; free space or fix the folder, then run again")

    def interrupt(self) -> None:
        """Ctrl-C once: no new submits; what is in flight is tracked to its end."""
        self._stop("interrupted: no new submits; tracking what is in flight "
                   "(Ctrl-C again to leave now; the ledger is saved either way)")
        self.interrupted = True

    def leave(self) -> None:
        """Ctrl-C twice, or SIGTERM: leave now (the ledger is saved; a later run resumes)."""
        self._progress.note("interrupted: leaving now; run the same command again to resume")
        self.interrupted = True
        self._left = True
        if self._leave is not None:
            self._leave()

    def on_leave(self, cancel: Callable[[], None]) -> None:
        """The run's work, to be cancelled by :meth:`leave` (at once, if it was already called)."""
        self._leave = cancel
        if self._left:
            cancel()
