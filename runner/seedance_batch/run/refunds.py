"""A failed task's refund, as the run learns it: from the status answer to the ledger.

APIDot charges at submit and refunds failed tasks, possibly in part; a status answer may
say so (``credits_return``, read by :mod:`.answers` into ``TaskStatus.refund_credits``).
After the tracker has recorded a task ``failed``, :func:`record_refund` records what the
service said it gave back (:meth:`~seedance_batch.ledger.api.Ledger.refunded`), so that
from then on the job counts as spent only what was not refunded: in the plan's budget
check, the reports and the run's summary. A failure the service does not say was
refunded stays counted in full (the conservative reading: credits are charged at submit).

:func:`refunded_during` is the run's own figure: what the refunds it recorded are worth.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from ..ledger import AsyncLedger, JobRecord, TransitionRefused
from ..plan import PlannedJob
from .answers import TaskStatus

__all__ = ["record_refund", "refunded_during"]


async def record_refund(ledger: AsyncLedger, campaign: str, key: str, status: TaskStatus, *,
                        source: str = "status") -> bool:
    """Record the refund ``status`` carries for job ``key`` (already ``failed``); True when it was news.

    The tracker calls it right after ``ledger.failed``: ``await record_refund(run.ledger,
    run.campaign, item.job.key, status)``.

    A refund the ledger refuses (the row moved on meanwhile: another runner resubmitted
    it) is noted on the job's audit trail instead; nothing is lost and the run goes on.
    """
    if not status.failed or status.refund_credits is None:
        return False
    try:
        return await ledger.refunded(campaign, key, status.task_id, status.refund_credits, source=source)
    except TransitionRefused as exc:
        await ledger.note(campaign, key, "refund_not_recorded",
                          {"task_id": status.task_id, "credits": status.refund_credits, "error": exc.message})
        return False


def refunded_during(planned: Iterable[PlannedJob], after: Iterable[JobRecord]) -> Decimal:
    """What the refunds recorded since the plan was made are worth: the records ``after`` a
    run, against the ones its plan read (a refund of a task the plan had not seen counts whole)."""
    before = {p.record.key: p.record for p in planned if p.record is not None}
    total = Decimal(0)
    for rec in after:
        old = before.get(rec.key)
        earlier = old.refund_usd if old is not None and old.task_id == rec.task_id else Decimal(0)
        total += max(Decimal(0), rec.refund_usd - earlier)
    return total
