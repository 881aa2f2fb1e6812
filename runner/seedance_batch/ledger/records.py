"""What the ledger holds, as every backend reads it back: job states, job rows, events.

Plain frozen records, no I/O: the ledger's interface (:mod:`.api`) speaks them, and
the plan, the run, the reports and the webhook receiver read them.

The job-state vocabulary is defined once, here (:data:`VOCABULARY`): for every state,
the user's word, the report badge's tone, the JUnit outcome and its reason, the
plan's change, whether a task is in flight and whether it counts as spent. Every
other table of states (the reports' words, tones and reasons, the plan's changes,
the run summary's counts) is derived from it, and a test proves each one covers
every state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Literal

__all__ = ["DERIVED_FIELDS", "PLANNED", "VOCABULARY", "Event", "JobRecord", "JobState", "StateInfo", "Tone"]


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
        return self in _IN_FLIGHT

    @property
    def charged(self) -> bool:
        """Counts as money spent (or possibly spent) against the budget."""
        return self in _CHARGED


PLANNED = "planned"
"""The state of a job with no ledger row: the manifest implies it, nothing was recorded.

One word wherever such a job is shown (reports, the run summary; ``status`` should say
it too), where earlier versions said ``planned``, ``new``, ``changed`` or ``not
submitted``. Why this word: the job exists only in the plan. ``new`` and ``changed`` are
the plan's changes (what a run would do, which a ``pending`` row gets too), not a state;
``not submitted`` is also true of ``pending``, ``failed`` and ``unknown`` rows; and
``pending`` is a row that exists (it keeps its attempts and last error), so it stays the
ledger's word for a recorded job that is safe to submit.
"""

Tone = Literal["ok", "busy", "idle", "warn", "bad"]


@dataclass(frozen=True, slots=True)
class StateInfo:
    """What one job state means to each part of the tool that shows or acts on it.

    ``problem`` and ``waiting`` are exclusive: a job in a problem state is a failure in
    junit.xml and summary.md (the reason is shown when the service gave none), a
    waiting one is skipped (not done yet, and not wrong), and one with neither is done.
    ``change`` is the plan's :class:`~seedance_batch.plan.Change` value for a job whose
    own row is in this state (the plan cannot be imported here: it imports the ledger).
    """

    word: str                 # the user's word (report badges and totals, summary.md)
    tone: Tone                # the badge's colour family in report.html
    change: str               # what the plan does with the job
    problem: str | None = None  # why the render did not succeed (None: it is not a problem)
    waiting: str | None = None  # what the job is waiting for (None: it is not waiting)
    in_flight: bool = False   # a task exists and is tracked without paying again
    charged: bool = False     # counts against the budget: money spent, or possibly spent

    @property
    def outcome(self) -> Literal["passed", "skipped", "failure"]:
        """The job as a JUnit test case."""
        return "failure" if self.problem else "skipped" if self.waiting else "passed"


# Every state a job can be in (the ledger's, and PLANNED), in the order reports list them.
VOCABULARY: Mapping[str, StateInfo] = {
    JobState.DONE.value: StateInfo("done", "ok", "done", charged=True),
    JobState.FINISHED.value: StateInfo("downloading", "busy", "in-flight", waiting="rendered, not downloaded yet",
                                       in_flight=True, charged=True),
    JobState.SUBMITTED.value: StateInfo("in flight", "busy", "in-flight", waiting="rendering", in_flight=True,
                                        charged=True),
    # only seen before a crashed run is recovered (a live run's submit, or a crash the next run makes unknown)
    JobState.SUBMITTING.value: StateInfo("submitting", "busy", "unknown", waiting="being submitted", charged=True),
    JobState.PENDING.value: StateInfo("pending", "idle", "new", waiting="recorded, not submitted yet"),
    # "new", or "changed" when the label's older job is in the ledger: the plan tells them apart
    PLANNED: StateInfo("planned", "idle", "new", waiting="not submitted yet"),
    JobState.TIMED_OUT.value: StateInfo(
        "timed out", "warn", "in-flight", in_flight=True, charged=True,
        problem="the run timed out while the render was in flight; a later run resumes tracking it"),
    JobState.UNKNOWN.value: StateInfo(
        "unknown", "warn", "unknown", charged=True,
        problem="the submit may have reached the service but no answer came; it may be billed"),
    # charged only when the service had created a task (see JobRecord.charged)
    JobState.FAILED.value: StateInfo("failed", "bad", "failed", problem="the render failed"),
}

# Sets of members, for the properties above (read for every row of a 100,000-job plan).
_IN_FLIGHT = frozenset(state for state in JobState if VOCABULARY[state.value].in_flight)
_CHARGED = frozenset(state for state in JobState if VOCABULARY[state.value].charged)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job's row in the ledger, as read back.

    Timestamps are ISO-8601 UTC strings (None until the transition happened).
    ``request`` is the submit body without callback_url, exactly as planned.
    ``refund_credits`` and ``refund_usd`` are what the service gave back for the row's
    task (a failed one), read from the audit trail's ``refunded`` line (see
    :mod:`.refunds`), not from the row: :data:`DERIVED_FIELDS`.
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
    refund_credits: int = 0
    refund_usd: Decimal = Decimal(0)

    @property
    def refunded_in_full(self) -> bool:
        """The service gave back all the task's credits."""
        return self.refund_credits > 0 and self.refund_credits >= self.credits

    @property
    def charged(self) -> bool:
        """Counts against the budget: a task may exist. A failed task counts too (the contract:
        credits are charged at submit), unless the service said it refunded it in full."""
        if self.state.charged:
            return True
        return self.state is JobState.FAILED and self.task_id is not None and not self.refunded_in_full

    @property
    def spent_usd(self) -> Decimal:
        """What the job's row has cost: its price when charged, less what the service refunded."""
        return max(Decimal(0), self.cost_usd - self.refund_usd) if self.charged else Decimal(0)


# JobRecord's fields that no backend stores in the job's row: they are read from the audit
# trail (a refund is an event). Copies and comparisons of rows leave them out.
DERIVED_FIELDS = ("refund_credits", "refund_usd")


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
