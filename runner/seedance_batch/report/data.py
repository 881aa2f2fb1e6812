"""What every report shows: one row per job and the campaign's totals.

A pure function of the plan (the manifest's jobs, their prices, the budget) and
the ledger's records (what happened to them). It works from a plan alone
(``plan --report``: every job ``planned``), mid-run, and after a crash: a job's
state is its latest ledger record with the same key, else ``planned``.

Every text is redacted here (see :mod:`.redact`), once, so no output format can
forget to. Money stays :class:`~decimal.Decimal`; formats decide how to print it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from ..expand.params import PARAMS
from ..ledger import PLANNED, VOCABULARY, JobRecord, JobState
from ..plan import Plan, PlannedJob
from ..plan_diff import NO_CHANGES, Differ, PlanDiff, diff_plan
from ..times import parse_time
from .redact import Redactor
from .takes import Counterpart, take_fields

__all__ = ["PLANNED", "STATES", "Report", "ReportRow", "Totals", "build_report"]

# Every state a report row can have (PLANNED: no ledger row yet), in the order totals list them.
STATES: tuple[str, ...] = tuple(VOCABULARY)
# States that mean "this render did not succeed": failures in junit.xml and summary.md.
PROBLEM_STATES = frozenset(state for state, info in VOCABULARY.items() if info.problem)
# The request parameters the reports show: those the parameter table gives a report column.
_REPORTED = tuple(p for p in PARAMS if p.csv is not None)


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One job as every report format shows it (texts already redacted).

    ``video`` is the downloaded file's path relative to the working directory
    (``<output_dir>/<job.output_path>``); ``href`` the same file as a URL relative
    to the report folder (percent-encoded), set only when the file is there.
    ``to_render``: a run would still pay for it (see :func:`_still_to_render`).
    ``params`` holds the request parameters the reports show (those with a report
    column in the parameter table), in table order; one the request does not set is None.
    ``comparison_usd`` is what the comparison provider (``Report.comparison``) would charge.
    """

    label: str
    shot: str
    combination: tuple[tuple[str, str], ...]
    key: str
    params: Mapping[str, Any]
    state: str
    change: str
    attempts: int
    credits: int
    cost_usd: Decimal
    comparison_usd: Decimal
    spent_usd: Decimal
    spent_credits: int
    task_id: str | None
    submitted_at: str | None
    finished_at: str | None
    render_seconds: float | None
    video: str
    href: str | None
    size: int | None
    sha256: str | None
    file_url: str | None
    error_class: str | None
    error_message: str | None
    prompt: str
    private: bool
    to_render: bool
    refund_credits: int = 0              # what the service gave back for a failed task...
    refund_usd: Decimal = Decimal(0)     # ...and its worth (spent_usd is net of it)
    # The job as a take (see .takes): its number and profile, the review's decision of it,
    # and the same take in the other profiles (a final beside its draft).
    take: int = 1
    profile: str | None = None
    verdict: str | None = None
    picked: bool = False
    note: str = ""
    reviewer: str = ""
    counterparts: tuple[Counterpart, ...] = ()

    @property
    def problem(self) -> bool:
        """Failed, unknown or timed out: a failure for CI."""
        return self.state in PROBLEM_STATES

    # The parameters every report lays out by name (what a job is priced and shown by).
    @property
    def model(self) -> str:
        """The request's model id."""
        return str(self.params["model"])

    @property
    def resolution(self) -> str:
        """The request's resolution."""
        return str(self.params["resolution"])

    @property
    def duration(self) -> int:
        """Seconds of video."""
        return int(self.params["duration"])

    @property
    def aspect_ratio(self) -> str | None:
        """The request's aspect ratio, when it sets one."""
        return self.params.get("aspect_ratio")


@dataclass(frozen=True, slots=True)
class Totals:
    """The campaign's figures: jobs by state, seconds of video, money.

    ``usd_planned`` is the list price of every job of the manifest; ``usd_spent``
    what the ledger says was (or may have been) charged for the campaign, jobs no
    longer in the manifest (``superseded``) included, and with ``--only`` the jobs outside
    the selection; ``usd_to_render`` the price of the jobs a run would still pay for
    (nothing charged yet, or ``--retry-failed``): spent plus that is what the campaign
    will have cost, and what the budget is checked against.
    ``comparison_usd`` is what the comparison provider would charge for the whole campaign.
    ``usd_refunded`` is what the service gave back for failed tasks of the rows shown
    (``usd_spent`` is already net of it, and of the superseded jobs' refunds).
    """

    jobs: int
    by_state: Mapping[str, int]
    problems: int
    seconds_planned: int
    seconds_rendered: int
    credits_planned: int
    credits_spent: int
    usd_planned: Decimal
    usd_spent: Decimal
    usd_to_render: Decimal
    comparison_usd: Decimal
    budget_usd: Decimal | None
    superseded_jobs: int
    superseded_usd: Decimal
    credits_refunded: int = 0            # given back for failed tasks (spent is net of it)
    usd_refunded: Decimal = Decimal(0)

    @property
    def within_budget(self) -> bool:
        """Spent plus still to render fits the budget (always, without one)."""
        return self.budget_usd is None or self.usd_spent + self.usd_to_render <= self.budget_usd


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the five report files show, in one record."""

    campaign: str
    manifest_path: str
    manifest_sha256: str
    generated_at: str
    started_at: str | None
    finished_at: str | None
    duration_seconds: float | None
    prices_source: str
    prices_snapshot: str
    comparison: str
    rows: tuple[ReportRow, ...]
    totals: Totals
    # What changed against the ledger (the plan's changed jobs, grouped; its removed jobs), redacted.
    diff: PlanDiff = NO_CHANGES
    # "11 of 22 jobs selected by --only 'hero/*'" when the plan was of a selection, else None.
    selection: str | None = None
    # The profile reported (None without profiles), and every profile of the manifest.
    profile: str | None = None
    profiles: tuple[str, ...] = ()


def build_report(
    plan: Plan,
    records: Iterable[JobRecord],
    *,
    report_dir: str,
    output_dir: str,
    manifest_sha256: str,
    generated_at: datetime,
    present: Collection[str] = frozenset(),
    started_at: datetime | str | None = None,
    finished_at: datetime | str | None = None,
    secrets: Iterable[str | None] = (),
    manifest_path: str | None = None,
) -> Report:
    """The report of ``plan`` given the campaign's ledger ``records`` (oldest first).

    ``report_dir`` and ``output_dir`` are relative to the working directory (they decide
    the links); ``present`` holds the ``job.output_path`` of every downloaded file on disk;
    ``manifest_path`` overrides the plan's (as the user typed it). Without ``records`` the
    plan's own rows are used, so a plan made against the ledger reports what it knows.
    """
    redactor = Redactor(secrets)
    by_key = _latest_by_key(records) or _latest_by_key(_plan_rows(plan))
    rows = [_row(p, by_key.get(p.priced.job.key), redactor, report_dir, output_dir, present, plan) for p in plan.jobs]
    superseded, elsewhere = _not_reported(plan, by_key)
    start, end = _run_window(started_at, finished_at, by_key.values())
    return Report(
        campaign=plan.campaign,
        manifest_path=manifest_path or str(plan.manifest_path),
        manifest_sha256=manifest_sha256,
        generated_at=_utc(generated_at),
        started_at=_iso(start),
        finished_at=_iso(end),
        duration_seconds=(end - start).total_seconds() if start and end else None,
        prices_source=plan.catalog.source,
        prices_snapshot=plan.catalog.snapshot_date,
        comparison=plan.catalog.comparison,
        rows=tuple(rows),
        totals=_totals(rows, superseded, plan.budget_usd, elsewhere),
        diff=diff_plan(plan, Differ(clean=lambda text: redactor.text(text) or "")),
        selection=None if plan.only is None else plan.only.summary(len(plan.jobs), plan.manifest_jobs),
        profile=None if plan.profiles is None else plan.profiles.profile,
        profiles=() if plan.profiles is None else plan.profiles.names,
    )


def _not_reported(plan: Plan, by_key: Mapping[str, JobRecord]) -> tuple[list[JobRecord], list[JobRecord]]:
    """The rows of no job of the report: superseded (no job of the manifest), and those of the
    jobs ``--only`` left out (not superseded: the manifest has them; their spend is the campaign's)."""
    keys = {planned.priced.job.key for planned in plan.jobs}
    # The manifest's jobs in other profiles (a final report's drafts) are not superseded either.
    kept = plan.outside | plan.elsewhere
    superseded = [r for k, r in by_key.items() if k not in keys and k not in kept]
    return superseded, [r for k, r in by_key.items() if k in kept]


def _plan_rows(plan: Plan) -> Iterator[JobRecord]:
    """The ledger rows the plan was made against: each job's own, and a changed job's old one."""
    for planned in plan.jobs:
        for record in (planned.record, planned.previous):
            if record is not None:
                yield record


def _latest_by_key(records: Iterable[JobRecord]) -> dict[str, JobRecord]:
    latest: dict[str, JobRecord] = {}
    for record in records:
        latest[record.key] = record  # oldest first: the last one is the newest
    return latest


def _row(
    planned: PlannedJob,
    record: JobRecord | None,
    redactor: Redactor,
    report_dir: str,
    output_dir: str,
    present: Collection[str],
    plan: Plan,
) -> ReportRow:
    job = planned.priced.job
    video = posixpath.normpath(posixpath.join(output_dir, job.output_path))
    done = record is not None and record.state is JobState.DONE
    return ReportRow(
        **_job_fields(planned, redactor),
        **_ledger_fields(record, redactor),
        video=video,
        # Only a done job's file is its render: a changed job's path may hold the old video.
        href=_relative(video, report_dir) if done and job.output_path in present else None,
        to_render=_still_to_render(planned, record),
        **take_fields(planned, plan, redactor, report_dir=report_dir, output_dir=output_dir, present=present),
    )


def _job_fields(planned: PlannedJob, redactor: Redactor) -> dict[str, Any]:
    """What the plan says of a job: its names, parameters, price and prompt."""
    job, cost = planned.priced.job, planned.priced.cost
    request, data = job.request, job.input
    return {
        # A label is made of combination values, so a signed URL in the matrix is in it too.
        "label": redactor.text(job.label) or "",
        "shot": job.shot,
        "combination": tuple((str(k), redactor.text(_text(v)) or "") for k, v in job.combination.items()),
        "key": job.key,
        "params": {p.name: (data if p.in_input else request).get(p.name) for p in _REPORTED},
        "change": planned.change.value,
        "credits": cost.credits,
        "cost_usd": cost.usd,
        "comparison_usd": cost.comparison_usd,
        "prompt": redactor.prompt(data.get("prompt"), private=job.private),
        "private": job.private,
    }


def _ledger_fields(record: JobRecord | None, redactor: Redactor) -> dict[str, Any]:
    """What the ledger says of a job (nothing yet: ``planned``)."""
    rec = record or _NO_RECORD
    charged = record is not None and record.charged
    return {
        "state": record.state.value if record else PLANNED,
        "attempts": rec.attempts,
        # what the job cost: its price, less what the service refunded for a failed task
        "spent_usd": rec.spent_usd if record is not None else Decimal(0),
        "spent_credits": max(0, rec.credits - rec.refund_credits) if charged else 0,
        "refund_credits": rec.refund_credits,
        "refund_usd": rec.refund_usd,
        # Service texts, bounded: an older ledger may hold a 20 MB message or an echoed key.
        "task_id": redactor.service(rec.task_id),
        "submitted_at": rec.submitted_at,
        "finished_at": rec.finished_at,
        "render_seconds": _seconds_between(rec.submitted_at, rec.finished_at),
        "size": rec.size,
        "sha256": rec.sha256,
        "file_url": redactor.service(rec.file_url),
        "error_class": redactor.service(rec.error_class),
        "error_message": redactor.service(rec.error_message),
    }


def _still_to_render(planned: PlannedJob, record: JobRecord | None) -> bool:
    """Nothing charged for it yet, or the plan submits it again (``--retry-failed``,
    ``--resubmit-unknown``) and its ledger row has not moved since: the plan's own rule,
    so a report's budget verdict is the one ``plan`` and ``run`` enforce."""
    if record is None or record.state is JobState.PENDING:
        return True
    return planned.submit and record == planned.record


# Stands in for a missing record so _row reads one shape; never reported as a state.
_NO_RECORD = JobRecord(campaign="", key="", label="", shot="", request={}, state=JobState.PENDING)


def _text(value: Any) -> str:
    """A combination value as a column heading shows it: a mapping by its ``id`` (as in
    job labels), else its pairs; a list by its items."""
    if isinstance(value, Mapping):
        if "id" in value:
            return _text(value["id"])
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    return str(value)


def _relative(path: str, start: str) -> str:
    # Links in the HTML are relative so the folder can be zipped and shared; a name
    # with a space, "#" or "?" must stay a path, hence the percent-encoding.
    return quote(posixpath.relpath(path, posixpath.normpath(start)))


def _totals(rows: list[ReportRow], superseded: list[JobRecord], budget: Decimal | None,
            elsewhere: list[JobRecord]) -> Totals:
    """``elsewhere``: rows of the manifest's jobs outside the report's selection (spent, not shown)."""
    by_state = {state: 0 for state in STATES}
    for row in rows:
        by_state[row.state] = by_state.get(row.state, 0) + 1
    old_usd = sum((r.spent_usd for r in superseded), Decimal(0))
    old_credits = sum(_spent_credits(r) for r in superseded)
    other_usd = sum((r.spent_usd for r in elsewhere), Decimal(0))
    other_credits = sum(_spent_credits(r) for r in elsewhere)
    return Totals(
        jobs=len(rows),
        by_state=by_state,
        problems=sum(1 for row in rows if row.problem),
        seconds_planned=sum(row.duration for row in rows),
        seconds_rendered=sum(row.duration for row in rows if row.state == JobState.DONE.value),
        credits_planned=sum(row.credits for row in rows),
        credits_spent=sum(row.spent_credits for row in rows) + old_credits + other_credits,
        usd_planned=sum((row.cost_usd for row in rows), Decimal(0)),
        usd_spent=sum((row.spent_usd for row in rows), Decimal(0)) + old_usd + other_usd,
        usd_to_render=sum((row.cost_usd for row in rows if row.to_render), Decimal(0)),
        comparison_usd=sum((row.comparison_usd for row in rows), Decimal(0)),
        budget_usd=budget,
        superseded_jobs=len(superseded),
        superseded_usd=old_usd,
        credits_refunded=sum(row.refund_credits for row in rows),
        usd_refunded=sum((row.refund_usd for row in rows), Decimal(0)),
    )


def _spent_credits(record: JobRecord) -> int:
    """The credits a ledger row has cost: its price when charged, less what was refunded."""
    return max(0, record.credits - record.refund_credits) if record.charged else 0


def _seconds_between(start: str | None, end: str | None) -> float | None:
    first, last = parse_time(start), parse_time(end)
    return (last - first).total_seconds() if first and last else None


def _run_window(
    started_at: datetime | str | None, finished_at: datetime | str | None, records: Iterable[JobRecord]
) -> tuple[datetime | None, datetime | None]:
    """The run's start and end as given, else the span of the ledger's activity."""
    start, end = parse_time(started_at), parse_time(finished_at)
    if start and end:
        return start, end
    moments = [
        t for r in records
        for t in (parse_time(r.created_at), parse_time(r.submitted_at), parse_time(r.updated_at),
                  parse_time(r.finished_at), parse_time(r.downloaded_at))
        if t is not None
    ]
    if not moments:
        return start, end
    return start or min(moments), end or max(moments)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else _utc(moment)


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
