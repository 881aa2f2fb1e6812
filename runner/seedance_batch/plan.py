"""Plan: compare the priced jobs with the ledger, terraform style, and check the budget.

Every job falls in exactly one :class:`Change`. Only jobs this run would submit
(``new``, ``changed``, and ``failed``/``unknown`` when the user asked for them)
count towards what the run would spend; ``done`` costs nothing and ``in-flight``
is tracked, never resubmitted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path

from .errors import BudgetExceeded
from .ledger import JobRecord, JobState
from .models import Catalog, PricedJob

__all__ = ["Change", "Plan", "PlannedJob", "check_budget", "make_plan", "plan_to_dict"]


class Change(str, Enum):
    """What the plan will do with a job, in the user's words."""

    NEW = "new"              # never submitted
    CHANGED = "changed"      # same label, different request: a new job replaces the old
    IN_FLIGHT = "in-flight"  # a task exists and is not done: resume tracking, never resubmit
    DONE = "done"            # finished and downloaded: skipped, costs nothing
    FAILED = "failed"        # retried only with --retry-failed
    UNKNOWN = "unknown"      # a submit may have reached the service: only with --resubmit-unknown


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """One job of the plan: its price, what will happen to it, and its ledger row."""

    priced: PricedJob
    change: Change
    submit: bool
    record: JobRecord | None = None

    @property
    def label(self) -> str:
        return self.priced.job.label


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run of this manifest would do and spend."""

    campaign: str
    manifest_path: Path
    jobs: tuple[PlannedJob, ...]
    catalog: Catalog
    budget_usd: Decimal | None
    # Already charged (or possibly charged) for this campaign by earlier runs.
    spent_usd: Decimal

    @property
    def to_submit(self) -> tuple[PlannedJob, ...]:
        return tuple(j for j in self.jobs if j.submit)

    @property
    def credits(self) -> int:
        """Credits this run would spend."""
        return sum(j.priced.cost.credits for j in self.jobs if j.submit)

    @property
    def usd(self) -> Decimal:
        """USD this run would spend."""
        return sum((j.priced.cost.usd for j in self.jobs if j.submit), Decimal(0))

    @property
    def fal_usd(self) -> Decimal:
        """What the comparison provider would charge for the same submissions."""
        return sum((j.priced.cost.fal_usd for j in self.jobs if j.submit), Decimal(0))

    @property
    def within_budget(self) -> bool:
        return self.budget_usd is None or self.spent_usd + self.usd <= self.budget_usd

    def counts(self) -> dict[str, int]:
        """Jobs per change, every change present (zeros included), in display order."""
        counts = {change.value: 0 for change in Change}
        for job in self.jobs:
            counts[job.change.value] += 1
        return counts


def make_plan(
    priced: Sequence[PricedJob],
    records: Iterable[JobRecord],
    *,
    manifest_path: Path,
    catalog: Catalog,
    budget_usd: Decimal | None,
    retry_failed: bool = False,
    resubmit_unknown: bool = False,
) -> Plan:
    """Classify each priced job against the campaign's ledger rows."""
    by_key: dict[str, JobRecord] = {}
    by_label: dict[str, JobRecord] = {}
    spent = Decimal(0)
    for record in records:
        by_key[record.key] = record
        by_label[record.label] = record  # records come oldest first: the latest wins
        if record.charged:
            spent += record.cost_usd
    jobs = []
    for item in priced:
        record = by_key.get(item.job.key)
        change = _change(record, by_label.get(item.job.label))
        submit = change in (Change.NEW, Change.CHANGED) or (
            (change is Change.FAILED and retry_failed) or (change is Change.UNKNOWN and resubmit_unknown)
        )
        jobs.append(PlannedJob(item, change, submit, record or by_label.get(item.job.label)))
    campaign = priced[0].job.campaign if priced else ""
    return Plan(campaign, manifest_path, tuple(jobs), catalog, budget_usd, spent)


def _change(same_key: JobRecord | None, same_label: JobRecord | None) -> Change:
    if same_key is None:
        return Change.CHANGED if same_label is not None else Change.NEW
    return _BY_STATE[same_key.state]


_BY_STATE: Mapping[JobState, Change] = {
    JobState.PENDING: Change.NEW,  # recorded but nothing reached the service
    JobState.SUBMITTING: Change.UNKNOWN,  # only seen if a crashed run was not recovered yet
    JobState.SUBMITTED: Change.IN_FLIGHT,
    JobState.FINISHED: Change.IN_FLIGHT,
    JobState.TIMED_OUT: Change.IN_FLIGHT,
    JobState.DONE: Change.DONE,
    JobState.FAILED: Change.FAILED,
    JobState.UNKNOWN: Change.UNKNOWN,
}


def check_budget(plan: Plan) -> None:
    """Raise :class:`BudgetExceeded` when the run would spend past the budget."""
    if plan.within_budget:
        return
    assert plan.budget_usd is not None
    already = f" (${plan.spent_usd:.2f} already spent on this campaign)" if plan.spent_usd else ""
    raise BudgetExceeded(
        f"plan costs ${plan.usd:.2f}{already}, over the budget of ${plan.budget_usd:.2f}",
        hint="raise budget.max_usd or --max-usd, or render fewer jobs; nothing was submitted",
    )


def plan_to_dict(plan: Plan) -> dict[str, object]:
    """The plan as the one JSON object ``plan --json`` prints (money as numbers in USD)."""
    jobs = []
    for planned in plan.jobs:
        job, cost = planned.priced.job, planned.priced.cost
        jobs.append({
            "label": job.label,
            "shot": job.shot,
            "key": job.key,
            "change": planned.change.value,
            "submit": planned.submit,
            "combination": dict(job.combination),
            "request": job.request,
            "output_path": job.output_path,
            "credits": cost.credits,
            "cost_usd": float(cost.usd),
            "fal_usd": float(cost.fal_usd),
        })
    return {
        "campaign": plan.campaign,
        "manifest": str(plan.manifest_path),
        "prices": {"source": plan.catalog.source, "snapshot_date": plan.catalog.snapshot_date},
        "counts": plan.counts(),
        "jobs": jobs,
        "total_credits": plan.credits,
        "total_usd": float(plan.usd),
        "fal_usd": float(plan.fal_usd),
        "spent_usd": float(plan.spent_usd),
        "budget_usd": None if plan.budget_usd is None else float(plan.budget_usd),
        "within_budget": plan.within_budget,
    }

