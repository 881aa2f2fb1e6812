"""Plan: compare the priced jobs with the ledger, terraform style, and check the budget.

Every job falls in exactly one :class:`Change`. Only jobs this run would submit
(``new``, ``changed``, and ``failed``/``unknown`` when the user asked for them)
count towards what the run would spend; ``done`` costs nothing and ``in-flight``
is tracked, never resubmitted. Jobs rendered before that the manifest no longer has
are listed (:attr:`Plan.removed`), never deleted. With ``--only`` (a
:class:`~seedance_batch.selection.Selection`) the plan holds the selected jobs only:
what it costs and the budget check are theirs; what the campaign already spent is
the whole campaign's, since the budget is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import orjson

from .errors import BudgetExceeded
from .ledger import VOCABULARY, JobRecord, JobState
from .models import Catalog, PricedJob
from .plan_diff import Differ, FieldChange
from .selection import Selection

if TYPE_CHECKING:
    from .ledger import Decision
    from .promotion import ProfileView

__all__ = [
    "Change", "Plan", "PlannedJob", "change_dict", "check_budget", "make_plan", "plan_to_dict", "write_plan_json",
]


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
    """One job of the plan: its price, what will happen to it, and its ledger rows.

    ``record`` is this job's own row (the same key), None before it was ever
    recorded; ``previous`` is, for a ``changed`` job, the row of the job it
    replaces (the same label, another request).
    """

    priced: PricedJob
    change: Change
    submit: bool
    record: JobRecord | None = None
    previous: JobRecord | None = None

    @property
    def label(self) -> str:
        """The job's label."""
        return self.priced.job.label


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run of this manifest would do and spend.

    ``to_submit`` are the jobs this run would submit; ``credits``, ``usd`` and
    ``comparison_usd`` (what ``catalog.comparison`` would charge) count only those.
    ``spent_usd`` is what earlier runs already charged (or may have) for the
    campaign. All are worked out once, in :func:`make_plan`.

    ``removed`` holds, for each label of the campaign's ledger rows that no job of the
    manifest carries, its latest row, unless a job of the manifest has that row's key
    (a job whose label changed is the same job). With ``only`` it holds those the
    selection's patterns match. ``outside`` holds the keys of the manifest's jobs that
    ``only`` left out (empty without it).

    ``profiles`` (None without them) is the profile in force, each job's counterparts in
    the other profiles, and ``--approved``'s selection (:mod:`.promotion`); the jobs of
    the other profiles, and the takes ``--approved`` left out, are never ``removed``.
    """

    campaign: str
    manifest_path: Path
    jobs: tuple[PlannedJob, ...]
    catalog: Catalog
    budget_usd: Decimal | None
    spent_usd: Decimal
    credits: int
    usd: Decimal
    comparison_usd: Decimal
    to_submit: tuple[PlannedJob, ...]
    removed: tuple[JobRecord, ...] = ()
    only: Selection | None = None
    outside: frozenset[str] = frozenset()
    profiles: ProfileView | None = None
    decisions: Mapping[str, Decision] = field(default_factory=dict)  # the review's, by job key
    elsewhere: frozenset[str] = frozenset()  # keys of the manifest's jobs in other profiles, or not --approved

    @property
    def manifest_jobs(self) -> int:
        """How many jobs the manifest has, selected or not."""
        return len(self.jobs) + len(self.outside)

    @property
    def within_budget(self) -> bool:
        """Spent plus what this run would spend fits the budget (always, without one)."""
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
    campaign: str | None = None,
    only: Selection | None = None,
    others: Sequence[PricedJob] = (),
    profiles: ProfileView | None = None,
    decisions: Iterable[Decision] = (),
) -> Plan:
    """Classify each priced job against the campaign's ledger rows (oldest first).

    ``campaign`` defaults to the jobs' own (a manifest whose matrix leaves no job needs it).
    ``only`` plans the jobs it selects (:class:`~seedance_batch.selection.NoMatch` when
    a pattern selects none). ``others`` are the manifest's jobs this plan is not about
    (other profiles', unapproved takes'): their ledger rows are not ``removed``.
    ``decisions`` are the review's current decisions of the campaign.
    """
    rows = _Rows(records)
    chosen = priced if only is None else only.choose(priced)
    submitted = {Change.NEW, Change.CHANGED}
    if retry_failed:
        submitted.add(Change.FAILED)
    if resubmit_unknown:
        submitted.add(Change.UNKNOWN)
    jobs = tuple(_planned(item, rows, submitted) for item in chosen)
    to_submit = tuple(job for job in jobs if job.submit)
    costs = [job.priced.cost for job in to_submit]
    return Plan(
        campaign=campaign or (priced[0].job.campaign if priced else ""), manifest_path=manifest_path,
        jobs=jobs, catalog=catalog, budget_usd=budget_usd, spent_usd=rows.spent,
        credits=sum(c.credits for c in costs), usd=sum((c.usd for c in costs), Decimal(0)),
        comparison_usd=sum((c.comparison_usd for c in costs), Decimal(0)), to_submit=to_submit,
        removed=_removed(rows, [*priced, *others], only), only=only,
        outside=frozenset() if only is None else frozenset(p.job.key for p in priced) - {j.priced.job.key for j in jobs},
        profiles=profiles, decisions={decision.key: decision for decision in decisions},
        elsewhere=frozenset(p.job.key for p in others),
    )


def _removed(rows: _Rows, priced: Sequence[PricedJob], only: Selection | None) -> tuple[JobRecord, ...]:
    """See :attr:`Plan.removed`; nothing to look at (and nothing spent on looking) with an empty ledger."""
    if not rows.by_label:
        return ()
    keys = {p.job.key for p in priced}
    labels = {p.job.label for p in priced}
    return tuple(r for label, r in rows.by_label.items()
                 if label not in labels and r.key not in keys and (only is None or only.matches(label)))


class _Rows:
    """The campaign's ledger rows by key and by label (the latest wins), and what they charged."""

    def __init__(self, records: Iterable[JobRecord]) -> None:
        self.by_key: dict[str, JobRecord] = {}
        self.by_label: dict[str, JobRecord] = {}
        self.spent = Decimal(0)
        for record in records:
            self.by_key[record.key] = record
            self.by_label[record.label] = record  # records come oldest first: the latest wins
            self.spent += record.spent_usd  # its price when charged, less what the service refunded


def _planned(item: PricedJob, rows: _Rows, submitted: set[Change]) -> PlannedJob:
    record = rows.by_key.get(item.job.key)
    if record is not None:
        change = _BY_STATE[record.state]
        return PlannedJob(item, change, change in submitted, record)
    previous = rows.by_label.get(item.job.label)
    change = Change.NEW if previous is None else Change.CHANGED
    return PlannedJob(item, change, change in submitted, None, previous)


# What the plan does with a job whose own row is in each state (the ledger's vocabulary says).
_BY_STATE: Mapping[JobState, Change] = {state: Change(VOCABULARY[state.value].change) for state in JobState}


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
    """The plan as the one JSON object ``plan --json`` prints (money as numbers in USD).

    Each job carries ``changes``: for a ``changed`` job, every request field that differs
    from the job it replaces (empty for the others; see :func:`change_dict`).
    """
    differ = Differ()
    return {**_summary(plan), "jobs": [_job_dict(planned, differ, plan.profiles) for planned in plan.jobs]}


def write_plan_json(plan: Plan, out: BinaryIO, *, chunk: int = 2000) -> None:
    """Write :func:`plan_to_dict` to ``out`` as UTF-8 JSON, a line, streamed.

    A 100,000-job plan is about 70 MB of JSON: written a chunk of jobs at a time
    (orjson, ten times the json module's speed), it never sits whole in memory.
    """
    head = orjson.dumps(_summary(plan), default=_jsonable)
    out.write(head[:-1] + b',"jobs":[')
    jobs, differ = plan.jobs, Differ()
    for start in range(0, len(jobs), chunk):
        part = orjson.dumps([_job_dict(planned, differ, plan.profiles) for planned in jobs[start:start + chunk]],
                            default=_jsonable)
        out.write((b"," if start else b"") + part[1:-1])
    out.write(b"]}\n")


def _summary(plan: Plan) -> dict[str, object]:
    return {
        "campaign": plan.campaign,
        "manifest": str(plan.manifest_path),
        "prices": {"source": plan.catalog.source, "snapshot_date": plan.catalog.snapshot_date},
        "counts": plan.counts(),
        "total_credits": plan.credits,
        "total_usd": float(plan.usd),
        "fal_usd": float(plan.comparison_usd),
        "spent_usd": float(plan.spent_usd),
        "budget_usd": None if plan.budget_usd is None else float(plan.budget_usd),
        "within_budget": plan.within_budget,
        "selection": None if plan.only is None else {
            "only": list(plan.only.patterns), "jobs": len(plan.jobs), "of": plan.manifest_jobs},
        "removed": [{"label": r.label, "key": r.key, "state": r.state.value,
                     "spent_usd": float(r.spent_usd)} for r in plan.removed],
        "profiles": None if plan.profiles is None else _profiles_dict(plan.profiles),
    }


def _profiles_dict(view: ProfileView) -> dict[str, object]:
    """``plan --json``'s ``profiles``: the one in force, each one's whole cost, the review's approvals."""
    promotion = view.promotion_cost()
    return {
        "profile": view.profile, "chosen_by": view.chosen_by,
        "totals": {name: {"jobs": t.jobs, "credits": t.credits, "usd": float(t.usd), "fal_usd": float(t.comparison_usd)}
                   for name, t in view.totals.items()},
        "approved_takes": len(view.approved), "picked_takes": len(view.picked),
        "promotion": {"jobs": promotion.jobs, "credits": promotion.credits, "usd": float(promotion.usd)},
        "approved_only": view.promoted is not None,
    }


def change_dict(change: FieldChange) -> dict[str, object]:
    """One changed field as ``plan --json`` shows it.

    ``{"field", "old", "new", "diff"}``: the values as the requests carry them, and the
    change in words (``… Slow [-push-in-]{+dolly-in+}, …``, ``8 -> 10``). A private
    prompt has no ``old`` or ``new`` and its ``diff`` is ``prompt changed (private)``.
    """
    if change.private:
        return {"field": change.name, "private": True, "diff": change.summary()}
    return {"field": change.name, "private": False, "old": change.old, "new": change.new, "diff": change.summary()}


def _job_dict(planned: PlannedJob, differ: Differ, profiles: ProfileView | None = None) -> dict[str, object]:
    job, cost = planned.priced.job, planned.priced.cost
    found = {} if profiles is None else profiles.counterparts.get(job.take_label, {})
    return {
        "label": job.label,
        "shot": job.shot,
        "key": job.key,
        "change": planned.change,
        "submit": planned.submit,
        "combination": job.combination,
        "request": job.request,
        "output_path": job.output_path,
        "credits": cost.credits,
        "cost_usd": float(cost.usd),
        "fal_usd": float(cost.comparison_usd),
        "changes": _changes(planned, differ),
        "take": job.take,
        "profile": job.profile,
        # The same take in the other profiles (its draft, its final): another request each.
        "counterparts": {name: {"label": other.job.label, "key": other.job.key, "credits": other.cost.credits,
                                "cost_usd": float(other.cost.usd)}
                         for name, other in found.items() if name != job.profile},
    }


def _changes(planned: PlannedJob, differ: Differ) -> list[dict[str, object]]:
    previous = planned.previous
    if previous is None or planned.record is not None:  # not a changed job
        return []
    job = planned.priced.job
    return [change_dict(c) for c in differ.changes(previous.request, job.request, private=job.private)]


def _jsonable(value: object) -> object:
    # Mappings from the manifest may be read-only views; anything else is a bug.
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
