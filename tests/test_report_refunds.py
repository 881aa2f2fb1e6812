"""Refunds of failed tasks: what the run records, and how the plan, the run's figures and every report show it.

A real SQLite ledger throughout; the jobs are real, priced by the real catalog. The refunds
get into the ledger as a run records them (:func:`seedance_batch.run.refunds.record_refund`,
from a status answer read by the real client code).
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from decimal import Decimal

import anyio
import pytest

from engine_support import make_jobs, plan_for
from seedance_batch.ledger import AsyncLedger, JobState, Ledger
from seedance_batch.plan import Plan
from seedance_batch.report.data import build_report
from seedance_batch.report.html import report_html
from seedance_batch.report.junit import report_junit
from seedance_batch.report.markdown import report_markdown
from seedance_batch.report.tables import CSV_COLUMNS, report_csv, report_json
from seedance_batch.run.answers import task_status
from seedance_batch.run.refunds import record_refund, refunded_during

NOON = datetime(2026, 4, 19, 12, tzinfo=timezone.utc)
PRICE = Decimal("0.28")  # seedance-2-fast, 480p, 4 s: 14 credits/s x 4 s = 56 credits at $0.005


def submit(ledger: Ledger, plan: Plan, index: int, task_id: str) -> str:
    job = plan.jobs[index].priced.job
    cost = plan.jobs[index].priced.cost
    ledger.begin_submit(campaign=job.campaign, key=job.key, label=job.label, shot=job.shot, request=job.request,
                        credits=cost.credits, cost_usd=cost.usd, output_path=job.output_path)
    ledger.submitted(job.campaign, job.key, task_id, "not_started")
    return job.key


def fail_with(ledger: Ledger, plan: Plan, key: str, task_id: str, data: dict) -> bool:
    """What the tracker does with a failed status answer: ledger failed, then the refund it carries."""
    ledger.failed(plan.campaign, key, "task_failed", "blocked", api_status="failed")
    status = task_status(task_id, {"task_id": task_id, "status": "failed", **data})

    async def record() -> bool:
        return await record_refund(AsyncLedger(ledger), plan.campaign, key, status)

    return anyio.run(record)


@pytest.fixture
def refunded(ledger: Ledger) -> tuple[Plan, Ledger]:
    """Four jobs: done; failed and refunded in full; failed and refunded in part; failed, no refund said."""
    jobs = make_jobs(4)
    plan = plan_for(jobs, ledger)
    keys = [submit(ledger, plan, i, f"task-{i}") for i in range(4)]
    ledger.finished(plan.campaign, keys[0], "https://f/v.mp4")
    ledger.downloaded(plan.campaign, keys[0], "demo/shot/0000.mp4", 10, "ab" * 32)
    assert fail_with(ledger, plan, keys[1], "task-1", {"credits_return": 56}) is True
    assert fail_with(ledger, plan, keys[2], "task-2", {"credits_return": 14}) is True
    assert fail_with(ledger, plan, keys[3], "task-3", {}) is False  # the service did not say
    return plan_for(jobs, ledger), ledger


def report(plan: Plan, ledger: Ledger):
    return build_report(plan, ledger.records(plan.campaign), report_dir="reports", output_dir="renders",
                        manifest_sha256="0" * 64, generated_at=NOON)


def test_the_records_carry_the_refunds_and_are_net_of_them(refunded: tuple[Plan, Ledger]) -> None:
    plan, ledger = refunded
    records = {r.task_id: r for r in ledger.records(plan.campaign)}
    assert [records[f"task-{i}"].refund_credits for i in range(4)] == [0, 56, 14, 0]
    assert [records[f"task-{i}"].spent_usd for i in range(4)] == [PRICE, 0, Decimal("0.21"), PRICE]
    assert [records[f"task-{i}"].charged for i in range(4)] == [True, False, True, True]


def test_the_plans_budget_does_not_count_a_failure_refunded_in_full(ledger: Ledger) -> None:
    jobs = make_jobs(2)
    plan = plan_for(jobs, ledger)
    keys = [submit(ledger, plan, i, f"task-{i}") for i in range(2)]
    assert plan_for(jobs, ledger).spent_usd == 2 * PRICE
    fail_with(ledger, plan, keys[1], "task-1", {"credits_return": 56})
    assert plan_for(jobs, ledger, budget=PRICE).spent_usd == PRICE  # the refunded job is out of the budget's spent


def test_the_report_rows_and_totals_are_net_of_refunds(refunded: tuple[Plan, Ledger]) -> None:
    rows = {row.task_id: row for row in report(*refunded).rows}
    assert [(rows[f"task-{i}"].refund_usd, rows[f"task-{i}"].spent_usd) for i in range(4)] == [
        (0, PRICE), (PRICE, 0), (Decimal("0.07"), Decimal("0.21")), (0, PRICE)]
    assert rows["task-1"].spent_credits == 0 and rows["task-2"].spent_credits == 42
    totals = report(*refunded).totals
    assert (totals.usd_spent, totals.usd_refunded, totals.credits_refunded) == (Decimal("0.77"), Decimal("0.35"), 70)
    assert totals.credits_spent == 56 + 0 + 42 + 56


def test_the_csv_appends_a_refund_column_at_the_end(refunded: tuple[Plan, Ledger]) -> None:
    # after every column of the version before it (later columns may follow it: only appended)
    before = CSV_COLUMNS[:CSV_COLUMNS.index("refund_usd")]
    assert {"change", "key", "spent_usd", "error_message", "prompt"} <= set(before)
    table = list(csv.DictReader(io.StringIO(report_csv(report(*refunded)))))
    assert [(r["task_id"], r["spent_usd"], r["refund_usd"]) for r in table] == [
        ("task-0", "0.28", ""), ("task-1", "0", "0.28"), ("task-2", "0.21", "0.07"), ("task-3", "0.28", "")]


def test_the_json_has_refund_fields_per_job_and_in_the_totals(refunded: tuple[Plan, Ledger]) -> None:
    data = json.loads(report_json(report(*refunded)))
    assert [(j["refund_credits"], j["refund_usd"]) for j in data["jobs"]] == [(0, 0.0), (56, 0.28), (14, 0.07),
                                                                               (0, 0.0)]
    assert (data["totals"]["usd_refunded"], data["totals"]["credits_refunded"]) == (0.35, 70)
    assert data["totals"]["usd_spent"] == 0.77


def test_the_summary_the_page_and_junit_say_what_was_refunded(refunded: tuple[Plan, Ledger]) -> None:
    built = report(*refunded)
    assert "$0.77 spent (after $0.35 refunded)" in report_markdown(built)
    page = report_html(built)
    assert "after $0.35 refunded" in page and "refunded $0.28" in page and "refunded $0.07" in page
    properties = {p.get("name"): p.get("value") for p in ET.fromstring(report_junit(built)).iter("property")}
    assert (properties["usd_spent"], properties["usd_refunded"]) == ("0.77", "0.35")


def test_nothing_refunded_shows_no_refund_anywhere(ledger: Ledger) -> None:
    jobs = make_jobs(1)
    plan = plan_for(jobs, ledger)
    submit(ledger, plan, 0, "task-0")
    built = report(plan_for(jobs, ledger), ledger)
    assert built.totals.usd_refunded == 0
    assert "refunded" not in report_markdown(built) and "refunded" not in report_html(built)


def test_the_runs_own_figure_counts_only_refunds_it_recorded(ledger: Ledger) -> None:
    jobs = make_jobs(2)
    plan = plan_for(jobs, ledger)
    keys = [submit(ledger, plan, i, f"task-{i}") for i in range(2)]
    fail_with(ledger, plan, keys[0], "task-0", {"credits_return": 56})
    earlier = plan_for(jobs, ledger)  # a run planned now has seen that refund...
    fail_with(ledger, earlier, keys[1], "task-1", {"credits_return": 28})
    after = ledger.records(plan.campaign)
    assert refunded_during(earlier.jobs, after) == Decimal("0.14")  # ...and recorded only the second
    assert refunded_during(plan.jobs, after) == Decimal("0.42")


@pytest.mark.parametrize("value", ["56", -5, 56.5, True, None, [56]])
def test_a_refund_figure_that_is_not_a_count_is_not_recorded(ledger: Ledger, value: object) -> None:
    jobs = make_jobs(1)
    plan = plan_for(jobs, ledger)
    key = submit(ledger, plan, 0, "task-0")
    assert fail_with(ledger, plan, key, "task-0", {"credits_return": value}) is False
    assert ledger.record(plan.campaign, key).refund_credits == 0  # type: ignore[union-attr]


def test_a_refund_the_ledger_refuses_is_kept_as_a_note(ledger: Ledger) -> None:
    jobs = make_jobs(1)
    plan = plan_for(jobs, ledger)
    key = submit(ledger, plan, 0, "task-0")
    ledger.failed(plan.campaign, key, "task_failed", "blocked", api_status="failed")
    stale = task_status("task-older", {"status": "failed", "credits_return": 56})  # not the row's task

    async def record() -> bool:
        return await record_refund(AsyncLedger(ledger), plan.campaign, key, stale)

    assert anyio.run(record) is False
    [note] = [e for e in ledger.events(plan.campaign) if e.kind == "refund_not_recorded"]
    assert note.detail["task_id"] == "task-older" and note.detail["credits"] == 56
    assert ledger.record(plan.campaign, key).state is JobState.FAILED  # type: ignore[union-attr]
