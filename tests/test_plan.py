"""Plan meets ledger: each job's change, what the run would spend, the budget."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from seedance_batch.errors import EXIT_BUDGET, BudgetExceeded, Location
from seedance_batch.expand import Job, request_key
from seedance_batch.ledger import JobRecord, JobState
from seedance_batch.models import load_catalog, price_jobs
from seedance_batch.plan import Change, check_budget, make_plan

CATALOG = load_catalog()


def job(label: str, prompt: str = "a lighthouse", duration: int = 5) -> Job:
    text = f"{prompt} ({label})"  # distinct labels, distinct requests
    request = {"model": "seedance-2", "input": {"prompt": text, "duration": duration, "resolution": "720p"}}
    return Job(
        campaign="spring", shot=label.split("/")[0], label=label, combination={}, request=request,
        key=request_key(request), output_path=f"{label}.mp4", location=Location("m.yaml", 1, 1),
    )


def record(of: Job, state: JobState, task_id: str | None = "task-1") -> JobRecord:
    return JobRecord(
        campaign=of.campaign, key=of.key, label=of.label, shot=of.shot, request=of.request,
        state=state, task_id=task_id, credits=200, cost_usd=Decimal("1.00"),
    )


def plan_of(jobs, records=(), budget=None, **flags):
    return make_plan(
        price_jobs(jobs, CATALOG), records, manifest_path=Path("m.yaml"), catalog=CATALOG,
        budget_usd=budget, **flags,
    )


def test_empty_ledger_everything_is_new_and_priced() -> None:
    plan = plan_of([job("a"), job("b", duration=10)])
    assert [j.change for j in plan.jobs] == [Change.NEW, Change.NEW]
    assert plan.credits == 40 * 5 + 40 * 10
    assert plan.usd == Decimal("3.000")
    assert plan.comparison_usd == Decimal("0.3024") * 15
    assert plan.within_budget


@pytest.mark.parametrize(
    ("state", "change", "submit"),
    [
        (JobState.DONE, Change.DONE, False),
        (JobState.SUBMITTED, Change.IN_FLIGHT, False),
        (JobState.FINISHED, Change.IN_FLIGHT, False),
        (JobState.TIMED_OUT, Change.IN_FLIGHT, False),
        (JobState.FAILED, Change.FAILED, False),
        (JobState.UNKNOWN, Change.UNKNOWN, False),
        (JobState.SUBMITTING, Change.UNKNOWN, False),
        (JobState.PENDING, Change.NEW, True),
    ],
)
def test_ledger_state_decides_the_change(state: JobState, change: Change, submit: bool) -> None:
    a = job("a")
    planned = plan_of([a], [record(a, state)]).jobs[0]
    assert (planned.change, planned.submit) == (change, submit)


def test_same_label_different_request_is_changed() -> None:
    old, new = job("a", prompt="v1"), job("a", prompt="v2")
    planned = plan_of([new], [record(old, JobState.DONE)]).jobs[0]
    assert planned.change is Change.CHANGED and planned.submit
    assert planned.record is None  # this job has no row of its own yet
    assert planned.previous is not None and planned.previous.key == old.key


def test_retry_and_resubmit_flags_opt_in() -> None:
    a, b = job("a"), job("b")
    records = [record(a, JobState.FAILED), record(b, JobState.UNKNOWN)]
    assert [j.submit for j in plan_of([a, b], records).jobs] == [False, False]
    assert [j.submit for j in plan_of([a, b], records, retry_failed=True).jobs] == [True, False]
    assert [j.submit for j in plan_of([a, b], records, resubmit_unknown=True).jobs] == [False, True]


def test_done_jobs_cost_nothing_and_earlier_spend_counts_against_budget() -> None:
    a, b = job("a"), job("b")
    plan = plan_of([a, b], [record(a, JobState.DONE)], budget=Decimal("2.00"))
    assert plan.usd == Decimal("1.000")
    assert plan.spent_usd == Decimal("1.00")
    assert plan.within_budget
    check_budget(plan)


def test_over_budget_raises_with_exit_3() -> None:
    a, b = job("a"), job("b")
    plan = plan_of([a, b], [record(a, JobState.UNKNOWN)], budget=Decimal("1.50"))
    assert not plan.within_budget
    with pytest.raises(BudgetExceeded) as caught:
        check_budget(plan)
    assert caught.value.exit_code == EXIT_BUDGET
    assert str(caught.value) == (
        "plan costs $1.00 ($1.00 already spent on this campaign), over the budget of $1.50; "
        "raise budget.max_usd or --max-usd, or render fewer jobs; nothing was submitted"
    )


def test_failed_without_task_is_not_spend() -> None:
    a = job("a")
    plan = plan_of([a], [record(a, JobState.FAILED, task_id=None)])
    assert plan.spent_usd == 0


def test_counts_cover_every_change() -> None:
    a, b = job("a"), job("b")
    counts = plan_of([a, b], [record(a, JobState.DONE)]).counts()
    assert counts == {"new": 1, "changed": 0, "in-flight": 0, "done": 1, "failed": 0, "unknown": 0}


@pytest.mark.parametrize("chunk", [1, 2, 1000])
def test_streamed_plan_json_is_exactly_plan_to_dict(chunk: int) -> None:
    import io
    import json

    from seedance_batch.plan import plan_to_dict, write_plan_json

    a, b, c = job("a"), job("b"), job("c", duration=8)
    plan = plan_of([a, b, c], [record(a, JobState.DONE)], budget=Decimal("9.5"))
    out = io.BytesIO()
    write_plan_json(plan, out, chunk=chunk)
    assert out.getvalue().endswith(b"}\n")
    streamed = json.loads(out.getvalue())
    assert streamed == json.loads(json.dumps(plan_to_dict(plan), default=float))
    assert [j["change"] for j in streamed["jobs"]] == ["done", "new", "new"]
    assert (streamed["total_credits"], streamed["budget_usd"], streamed["within_budget"]) == (40 * 13, 9.5, True)


def test_streamed_plan_json_of_no_jobs() -> None:
    import io
    import json

    from seedance_batch.plan import write_plan_json

    out = io.BytesIO()
    write_plan_json(plan_of([]), out)
    assert json.loads(out.getvalue())["jobs"] == []


def test_streamed_plan_json_carries_each_changed_jobs_changes_and_the_removed_jobs() -> None:
    import io
    import json

    from seedance_batch.plan import plan_to_dict, write_plan_json

    old_a, new_a, kept, gone = job("a", prompt="v1"), job("a", prompt="v2"), job("b"), job("c")
    plan = plan_of([new_a, kept], [record(old_a, JobState.DONE), record(kept, JobState.DONE),
                                   record(gone, JobState.FAILED, task_id=None)])
    out = io.BytesIO()
    write_plan_json(plan, out, chunk=1)
    streamed = json.loads(out.getvalue())
    assert streamed == json.loads(json.dumps(plan_to_dict(plan), default=float))
    assert [j["changes"] for j in streamed["jobs"]] == [
        [{"field": "prompt", "private": False, "old": "v1 (a)", "new": "v2 (a)", "diff": "prompt: [-v1-]{+v2+} (a)"}],
        [],
    ]
    assert streamed["removed"] == [{"label": "c", "key": gone.key, "state": "failed", "spent_usd": 0.0}]
