"""Refunds of failed tasks: a line of the audit trail, shown on the job's record.

APIDot charges credits at submit and refunds failed tasks, possibly in part (its
dashboard shows ``credits_return``; the contract). When the service says so (a status
answer carrying ``credits_return``), the run records it with :meth:`Ledger.refunded`:
one ``refunded`` event on the job's audit trail, naming the task, the credits and
their worth in dollars (the job's price, pro rata). Nothing in the job's row changes:
its price stays what it was quoted; every backend reads the refund back onto the row's
record (``JobRecord.refund_credits`` and ``refund_usd``), for the row's own task only.
A refund therefore survives whatever copies the audit trail, and a ledger written before
refunds existed simply has none.

A refund is recorded only for a ``failed`` row holding that very task; the same figure
again is a repeat (False); another figure for the same task replaces it (the service
said more, or less). This module is the rules, backend-neutral; the SQL is each backend's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from ..errors import Location
from .records import JobRecord, JobState
from .transitions import TransitionRefused, shown

__all__ = ["REFUNDED", "Refund", "attach", "judge_refund", "refund_detail", "refund_of", "refund_usd"]

REFUNDED = "refunded"  # the kind of the audit trail's line


@dataclass(frozen=True, slots=True)
class Refund:
    """What the service gave back for one job's task."""

    key: str
    task_id: str
    credits: int
    usd: Decimal


def refund_usd(cost_usd: Decimal, credits: int, refunded: int) -> Decimal:
    """The dollars ``refunded`` credits of a job priced ``cost_usd`` for ``credits`` are worth (pro rata)."""
    if credits <= 0 or refunded <= 0:
        return Decimal(0)
    return cost_usd * min(refunded, credits) / credits


def refund_detail(credits: int, usd: Decimal, source: str) -> dict[str, Any]:
    """The ``refunded`` event's detail."""
    return {"credits": credits, "usd": str(usd), "source": source}


def refund_of(key: object, task_id: object, detail: object) -> Refund | None:
    """A ``refunded`` event as a :class:`Refund`; None when it is not the shape this version writes."""
    if not (isinstance(key, str) and isinstance(task_id, str) and isinstance(detail, Mapping)):
        return None
    credits, usd = detail.get("credits"), detail.get("usd")
    if isinstance(credits, bool) or not isinstance(credits, int) or credits < 0 or not isinstance(usd, str):
        return None
    try:
        amount = Decimal(usd)
    except InvalidOperation:
        return None
    return Refund(key, task_id, credits, amount) if amount.is_finite() and amount >= 0 else None


def attach(records: Iterable[JobRecord], refunds: Mapping[str, Refund]) -> list[JobRecord]:
    """``records`` with each one's refund on it: only a refund of the row's own task (a job
    submitted again has a new task, and the old task's refund is not the new one's)."""
    out = []
    for rec in records:
        refund = refunds.get(rec.key)
        if refund is not None and refund.task_id == rec.task_id:
            rec = replace(rec, refund_credits=refund.credits, refund_usd=refund.usd)
        out.append(rec)
    return out


def judge_refund(state: JobState | None, held_task: str | None, task_id: str, credits: int,
                 recorded: int | None, *, where: Location, campaign: str, key: str,
                 label: str) -> Literal["write", "repeat"]:
    """Whether to write a refund of ``credits`` for ``task_id`` on a row in ``state`` holding
    ``held_task``, whose recorded refund for that task is ``recorded`` (None: none yet).

    Refused (:class:`~.transitions.TransitionRefused`) unless the row is failed and holds the task.
    """
    if isinstance(credits, bool) or not isinstance(credits, int) or credits < 0:
        raise ValueError(f"a refund is a count of credits, not {credits!r}")
    if state is not JobState.FAILED or held_task != task_id:
        what = "not in the ledger" if state is None else (
            f"{state.value}" + (f" with task {shown(held_task)}" if held_task and held_task != task_id else ""))
        raise TransitionRefused(
            f"the ledger refused to record a refund of task {shown(task_id)} for this job: it is {what}, and only "
            "a failed job's own task is refunded", location=replace(where, job=shown(label) if label else None),
            hint="nothing was changed", operation="refunded", campaign=campaign, key=key, label=label, state=state,
            task_id=task_id)
    if recorded == credits or (recorded is None and credits == 0):
        return "repeat"  # the same figure again, or nothing given back: nothing to write
    return "write"
