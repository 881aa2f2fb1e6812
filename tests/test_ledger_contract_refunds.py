"""The ledger's contract for refunds, run against every backend of the contract suite.

``refunded`` records what the service gave back for a failed job's task: one ``refunded``
line of the audit trail, read back onto the row's record (``refund_credits``,
``refund_usd``: the price pro rata), which then counts as spent only what was not
refunded. A refund is only for a failed row holding that task; the same figure again is
a repeat; a job submitted again (a new task) does not carry the old task's refund.
"""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest

from seedance_batch.ledger import AsyncLedger, JobState, Ledger, TransitionRefused, open_ledger
from test_ledger_contract import CAMPAIGN, begin, led, put, where  # the suite's own: every backend, fresh

__all__ = ["led", "where"]  # used as fixtures, not unused imports


def failed_task(led: Ledger, key: str = "k1") -> str:
    """A job whose task (``task-<key>``) the service created, then said failed; its task id."""
    put(led, key, JobState.SUBMITTED)
    led.failed(CAMPAIGN, key, "task_failed", "blocked by the safety filter", api_status="failed")
    return f"task-{key}"


def test_a_full_refund_shows_on_the_record_and_the_job_no_longer_counts_as_spent(led: Ledger) -> None:
    task = failed_task(led)
    before = led.record(CAMPAIGN, "k1")
    assert before is not None and before.charged and before.spent_usd == Decimal("1.00")
    assert led.refunded(CAMPAIGN, "k1", task, 200) is True
    after = led.record(CAMPAIGN, "k1")
    assert after is not None
    assert (after.refund_credits, after.refund_usd, after.charged, after.spent_usd) == (200, Decimal("1.00"), False,
                                                                                      Decimal(0))
    assert (after.state, after.credits, after.cost_usd) == (JobState.FAILED, 200, Decimal("1.00"))  # the row as quoted
    [line] = [e for e in led.events(CAMPAIGN) if e.kind == "refunded"]
    assert (line.task_id, line.state, line.detail["credits"], line.detail["source"]) == (task, "failed", 200, "status")
    assert Decimal(line.detail["usd"]) == Decimal("1.00")


def test_a_partial_refund_leaves_the_rest_spent(led: Ledger) -> None:
    task = failed_task(led)
    led.refunded(CAMPAIGN, "k1", task, 50, source="webhook")
    rec = led.record(CAMPAIGN, "k1")
    assert rec is not None and (rec.refund_credits, rec.refund_usd) == (50, Decimal("0.25"))
    assert rec.charged and rec.spent_usd == Decimal("0.75")
    [line] = [e for e in led.events(CAMPAIGN) if e.kind == "refunded"]
    assert line.detail["source"] == "webhook"


def test_every_reading_carries_the_refund(led: Ledger) -> None:
    task = failed_task(led)
    failed_task(led, "k2")
    led.refunded(CAMPAIGN, "k1", task, 200)
    by_key = {rec.key: rec.refund_credits for rec in led.records(CAMPAIGN)}
    assert by_key == {"k1": 200, "k2": 0}
    found = led.by_task_id(task)
    assert found is not None and found.refund_credits == 200
    assert led.record(CAMPAIGN, "k2").refund_credits == 0  # type: ignore[union-attr]


def test_the_same_refund_again_is_a_repeat_and_another_figure_replaces_it(led: Ledger) -> None:
    task = failed_task(led)
    assert led.refunded(CAMPAIGN, "k1", task, 50) is True
    trail = led.events(CAMPAIGN)
    assert led.refunded(CAMPAIGN, "k1", task, 50) is False
    assert led.events(CAMPAIGN) == trail
    assert led.refunded(CAMPAIGN, "k1", task, 200) is True
    assert led.record(CAMPAIGN, "k1").refund_credits == 200  # type: ignore[union-attr]
    assert led.refunded(CAMPAIGN, "k1", task, 0) is True  # "none after all" is news too
    assert led.record(CAMPAIGN, "k1").refund_credits == 0  # type: ignore[union-attr]


def test_nothing_given_back_with_nothing_recorded_writes_nothing(led: Ledger) -> None:
    task = failed_task(led)
    trail = led.events(CAMPAIGN)
    assert led.refunded(CAMPAIGN, "k1", task, 0) is False
    assert led.events(CAMPAIGN) == trail


def test_credits_past_the_price_count_as_the_price(led: Ledger) -> None:
    task = failed_task(led)
    led.refunded(CAMPAIGN, "k1", task, 10_000)
    rec = led.record(CAMPAIGN, "k1")
    assert rec is not None and (rec.refund_credits, rec.refund_usd, rec.spent_usd) == (200, Decimal("1.00"),
                                                                                       Decimal(0))


@pytest.mark.parametrize("state", [None, JobState.PENDING, JobState.SUBMITTED, JobState.FINISHED, JobState.DONE,
                                   JobState.UNKNOWN, JobState.TIMED_OUT])
def test_only_a_failed_job_is_refunded(led: Ledger, state: JobState | None) -> None:
    put(led, "k1", state)
    before, trail = led.record(CAMPAIGN, "k1"), led.events(CAMPAIGN)
    with pytest.raises(TransitionRefused) as caught:
        led.refunded(CAMPAIGN, "k1", "task-k1", 200)
    refused = caught.value
    assert (refused.operation, refused.state, refused.key) == ("refunded", state, "k1")
    assert "only a failed job's own task is refunded" in refused.message
    assert (led.record(CAMPAIGN, "k1"), led.events(CAMPAIGN)) == (before, trail)


def test_a_refund_of_another_task_is_refused(led: Ledger) -> None:
    failed_task(led)
    with pytest.raises(TransitionRefused, match="it is failed with task task-k1"):
        led.refunded(CAMPAIGN, "k1", "task-someone-else", 200)


def test_a_job_submitted_again_does_not_carry_its_old_tasks_refund(led: Ledger) -> None:
    task = failed_task(led)
    led.refunded(CAMPAIGN, "k1", task, 200)
    begin(led, "k1", resubmit=(JobState.FAILED,))
    led.submitted(CAMPAIGN, "k1", "task-second", "not_started")
    rec = led.record(CAMPAIGN, "k1")
    assert rec is not None and rec.task_id == "task-second" and rec.refund_credits == 0 and rec.charged


def test_a_read_only_opening_reads_refunds_and_refuses_to_write_one(led: Ledger, where: str) -> None:
    task = failed_task(led)
    led.refunded(CAMPAIGN, "k1", task, 200)
    reader = open_ledger(where, read_only=True)
    assert reader is not None
    with reader:
        assert reader.record(CAMPAIGN, "k1").refund_credits == 200  # type: ignore[union-attr]
        with pytest.raises(Exception, match="read-only"):
            reader.refunded(CAMPAIGN, "k1", task, 100)


def test_the_async_facade_records_a_refund(led: Ledger) -> None:
    task = failed_task(led)

    async def call() -> bool:
        return await AsyncLedger(led).refunded(CAMPAIGN, "k1", task, 200)

    assert anyio.run(call) is True
    assert led.record(CAMPAIGN, "k1").refund_credits == 200  # type: ignore[union-attr]
