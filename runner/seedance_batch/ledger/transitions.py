"""Which write may move a job's row from which state: the rules every backend follows.

:data:`TRANSITIONS` is the ledger's state machine written as data, one
:class:`Transition` per write of the :class:`~.api.Ledger` interface. A backend applies
a write as one transaction that moves the row only from the transition's ``sources``
(an ``UPDATE ... WHERE state IN (...)``, so two processes can never both move it), and
when the row was not moved, :func:`judge` says why: the row already says what the call
would write (a *repeat*: nothing is written, the call returns False), or the move is
*refused*: :class:`TransitionRefused`, a :class:`~seedance_batch.errors.LedgerError`
naming the job, never a silently ignored False.

No I/O here: the table, the rule and the words of a refusal.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from ..errors import LedgerError, Location
from ..safetext import bound, one_line
from .records import JobState

__all__ = [
    "RESUBMITTABLE", "TRANSITIONS", "Transition", "TransitionRefused", "judge", "refusal", "resubmit_states", "shown",
]

# A value read from a ledger row, quoted in an error: enough to find it, not a flood.
_SHOWN_VALUE = 60

# The states a submit may claim again, but only when the user says so (the plan's flags).
RESUBMITTABLE: Mapping[JobState, str] = {JobState.FAILED: "--retry-failed", JobState.UNKNOWN: "--resubmit-unknown"}


@dataclass(frozen=True, slots=True)
class Transition:
    """One write of the ledger: the state it moves a job's row to, and from where.

    ``sources``: the states it moves the row from (None: the job has no row yet).
    ``repeats``: the states in which the call finds the job already where it would put
    it: nothing is written and it returns False. With ``same`` set, only when the row
    also holds the same value of that column (the same task id, the same service word).
    Any other state is refused (:class:`TransitionRefused`).
    """

    operation: str
    to: JobState
    event: str  # the kind of the audit trail's line it appends
    sources: frozenset[JobState | None]
    repeats: frozenset[JobState] = field(default_factory=frozenset)
    same: Literal["task_id", "api_status"] | None = None


def _states(*states: JobState | None) -> frozenset[JobState | None]:
    return frozenset(states)


_S = JobState
TRANSITIONS: Mapping[str, Transition] = {t.operation: t for t in (
    # claimed only from nothing or pending (plus failed/unknown when the user says so): never over
    # another's submitting, never over a task that exists, never over a rendered job
    Transition("begin_submit", _S.SUBMITTING, "submitting", _states(None, _S.PENDING)),
    # the task id lands from submitting, or from unknown (recovered meanwhile: the task exists after all)
    Transition("submitted", _S.SUBMITTED, "submitted", _states(_S.SUBMITTING, _S.UNKNOWN), frozenset(JobState),
               same="task_id"),
    Transition("release", _S.PENDING, "released", _states(_S.SUBMITTING), frozenset({_S.PENDING})),
    Transition("unknown", _S.UNKNOWN, "unknown", _states(_S.SUBMITTING), frozenset({_S.UNKNOWN})),
    Transition("failed", _S.FAILED, "failed",
               _states(_S.PENDING, _S.SUBMITTING, _S.SUBMITTED, _S.FINISHED, _S.TIMED_OUT), frozenset({_S.FAILED})),
    Transition("status_seen", _S.SUBMITTED, "status", _states(_S.SUBMITTED, _S.TIMED_OUT),
               frozenset({_S.SUBMITTED, _S.TIMED_OUT}), same="api_status"),
    # finished again records a refreshed file URL
    Transition("finished", _S.FINISHED, "finished", _states(_S.SUBMITTED, _S.TIMED_OUT, _S.FINISHED)),
    Transition("downloaded", _S.DONE, "downloaded", _states(_S.FINISHED), frozenset({_S.DONE})),
    Transition("timed_out", _S.TIMED_OUT, "timed_out", _states(_S.SUBMITTED, _S.FINISHED), frozenset({_S.TIMED_OUT})),
    # every row left submitting by a run that died (see Ledger.recover)
    Transition("recover", _S.UNKNOWN, "recovered", _states(_S.SUBMITTING)),
)}


def resubmit_states(resubmit: Collection[JobState]) -> frozenset[JobState]:
    """``begin_submit``'s ``resubmit``, checked: only failed and unknown jobs can be submitted again."""
    wanted = frozenset(resubmit)
    if not wanted <= RESUBMITTABLE.keys():
        raise ValueError(f"only failed and unknown jobs are submitted again, not {sorted(wanted - RESUBMITTABLE.keys())}")
    return wanted


def judge(transition: Transition, state: JobState | None, *, held: str | None = None, value: str | None = None,
          resubmit: Collection[JobState] = ()) -> Literal["move", "repeat", "refuse"]:
    """What ``transition`` does to a row in ``state`` (None: no row).

    ``held`` is the row's value of the transition's ``same`` column and ``value`` the
    call's; ``resubmit`` the states ``begin_submit`` was told it may claim too.
    """
    if state in transition.repeats and (transition.same is None or held == value):
        return "repeat"
    if state in transition.sources or (transition.operation == "begin_submit" and state in resubmit):
        return "move"
    return "refuse"


class TransitionRefused(LedgerError):
    """The ledger refused a write: the job's row is not in a state it may be moved from.

    Carries the job (``campaign``, ``key``, ``label``: empty when there is no row), the
    ``operation`` refused, the row's ``state`` (None: no row) and, for ``submitted``,
    the ``task_id`` that could not go on the row (kept in the audit trail).
    """

    def __init__(self, message: str, *, location: Location, hint: str | None, operation: str, campaign: str,
                 key: str, label: str, state: JobState | None, task_id: str | None = None) -> None:
        super().__init__(message, location=location, hint=hint)
        self.operation = operation
        self.campaign = campaign
        self.key = key
        self.label = label
        self.state = state
        self.task_id = task_id


def refusal(transition: Transition, state: JobState | None, *, where: Location, campaign: str, key: str,
            label: str, held_task: str | None = None, task_id: str | None = None) -> TransitionRefused:
    """The error for ``transition`` refused on a row in ``state`` (None: no row), in the user's words."""
    message, hint = _refusal_words(transition, state, held_task=held_task, task_id=task_id)
    return TransitionRefused(message, location=replace(where, job=shown(label) if label else None), hint=hint,
                             operation=transition.operation, campaign=campaign, key=key, label=label, state=state,
                             task_id=task_id)


def _refusal_words(transition: Transition, state: JobState | None, *, held_task: str | None,
                   task_id: str | None) -> tuple[str, str]:
    if transition.operation == "begin_submit":
        return (f"not submitted: this job is {_word(state)} in the ledger ({_why_not(state)})",
                "nothing was sent; `seedance-batch plan` shows the campaign as it is now")
    if transition.operation == "submitted" and task_id is not None:
        why = _word(state) + (f" with task {shown(held_task)}" if held_task and state else "")
        return (f"task {one_line(task_id)} cannot go on this job's row (it is {why}, not submitting); "
                "the task id is kept in the ledger's events (task_refused)",
                "check that task in APIDot's dashboard before submitting this job again")
    sources = " or ".join(sorted(s.value for s in transition.sources if s is not None))
    return (f"the ledger refused to mark this job {transition.to.value}: it is "
            f"{_word(state) if state else 'not in the ledger'}, and only a job that is {sources} can be",
            "nothing was changed; if another run uses this campaign, wait for it to finish")


def _word(state: JobState | None) -> str:
    return "missing" if state is None else state.value


def _why_not(state: JobState | None) -> str:
    if state is JobState.SUBMITTING:
        return "another run is submitting it, or a crashed run left it: the next run makes it unknown"
    if state is not None and state in RESUBMITTABLE:
        return f"it is submitted again only with {RESUBMITTABLE[state]}"
    if state is JobState.DONE:
        return "it is rendered already"
    return "its task exists: a run tracks it without paying again"


def shown(value: object) -> str:
    """A value read from the ledger, quoted in an error: bounded, one line, inert on a terminal."""
    return one_line(bound(value if isinstance(value, str) else repr(value), _SHOWN_VALUE))
