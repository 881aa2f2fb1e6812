"""What the ledger holds, as every backend reads it back: job states, job rows, events.

Plain frozen records, no I/O: the ledger's interface (:mod:`.api`) speaks them, and
the plan, the run, the reports and the webhook receiver read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

__all__ = ["Event", "JobRecord", "JobState"]


class JobState(str, Enum):
    """Where a job stands in the ledger.

    pending     recorded, not (or no longer) being submitted: nothing was sent that
                the service answered with a task; safe to submit
    submitting  written before the POST; found at start-up it means a crash mid-submit,
                and becomes ``unknown``
    submitted   the service gave a task_id; not terminal yet (in flight)
    finished    the service says finished; the video is not downloaded yet
    done        finished, downloaded and verified (size + sha256)
    failed      the service said failed, or rejected the request (400), or attempts ran out
    unknown     the submit was sent and no answer came: the task may exist and be billed;
                resubmitted only with --resubmit-unknown
    timed_out   run.timeout passed while tracking; the task_id is kept and a later run
                resumes tracking it (it costs nothing to ask)
    """

    PENDING = "pending"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    FINISHED = "finished"
    DONE = "done"
    FAILED = "failed"
    UNKNOWN = "unknown"
    TIMED_OUT = "timed_out"

    @property
    def in_flight(self) -> bool:
        """A task exists and is being (or can be) tracked without paying again."""
        return self in (JobState.SUBMITTED, JobState.FINISHED, JobState.TIMED_OUT)

    @property
    def charged(self) -> bool:
        """Counts as money spent (or possibly spent) against the budget."""
        return self in (
            JobState.SUBMITTING, JobState.SUBMITTED, JobState.FINISHED,
            JobState.DONE, JobState.UNKNOWN, JobState.TIMED_OUT,
        )


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job's row in the ledger, as read back.

    Timestamps are ISO-8601 UTC strings (None until the transition happened).
    ``request`` is the submit body without callback_url, exactly as planned.
    """

    campaign: str
    key: str
    label: str
    shot: str
    request: Mapping[str, Any]
    state: JobState
    task_id: str | None = None
    api_status: str | None = None
    attempts: int = 0
    credits: int = 0
    cost_usd: Decimal = Decimal(0)
    error_class: str | None = None
    error_message: str | None = None
    file_url: str | None = None
    output_path: str | None = None
    size: int | None = None
    sha256: str | None = None
    created_at: str | None = None
    submitted_at: str | None = None
    finished_at: str | None = None
    downloaded_at: str | None = None
    updated_at: str | None = None

    @property
    def charged(self) -> bool:
        """Counts against the budget: a task may exist. A failed task counts too
        (assumption: the contract does not say whether failed renders are billed)."""
        return self.state.charged or (self.state is JobState.FAILED and self.task_id is not None)


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the audit trail: a state change, a retry, a webhook delivery..."""

    id: int
    campaign: str
    key: str
    label: str
    at: str
    kind: str
    state: str | None = None
    task_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
