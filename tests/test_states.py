"""One job-state vocabulary: every table of states is derived from ledger.VOCABULARY and covers every state.

Shaped after httpx's tests/test_exceptions.py: a mapping proven complete. A state added
to JobState without its words, tone, JUnit outcome and plan change fails here, not in a
report that shows it raw.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from seedance_batch import plan as planning
from seedance_batch.ledger import PLANNED, VOCABULARY, JobRecord, JobState
from seedance_batch.report import data, fmt, html, junit
from seedance_batch.run.settings import RunResult

EVERY_STATE = {state.value for state in JobState} | {PLANNED}


def test_the_vocabulary_names_every_ledger_state_and_the_state_of_a_job_with_no_row() -> None:
    assert set(VOCABULARY) == EVERY_STATE
    assert PLANNED not in {state.value for state in JobState}  # no ledger row is ever "planned"


@pytest.mark.parametrize(("name", "table"), [
    ("report words (fmt._STATE_WORDS)", fmt._STATE_WORDS),
    ("report badge tones (html._TONE)", html._TONE),
    ("report order (data.STATES)", dict.fromkeys(data.STATES)),
])
def test_every_table_of_the_reports_covers_every_state(name: str, table: dict[str, object]) -> None:
    assert set(table) == EVERY_STATE, name


def test_report_order_is_the_vocabularys_and_each_state_appears_once() -> None:
    assert tuple(VOCABULARY) == data.STATES
    assert len(set(data.STATES)) == len(data.STATES)


def test_every_state_is_exactly_one_junit_outcome() -> None:
    """A problem (a failure, with its reason), waiting (skipped, with what for), or done (passed)."""
    skipped, problems = set(junit._WHY_SKIPPED), set(fmt.PROBLEM_REASONS)
    passed = {state for state, info in VOCABULARY.items() if info.outcome == "passed"}
    assert not skipped & problems
    assert skipped | problems | passed == EVERY_STATE
    assert passed == {JobState.DONE.value}
    assert problems == set(data.PROBLEM_STATES)
    assert all(junit._WHY_SKIPPED.values()) and all(fmt.PROBLEM_REASONS.values())


def test_the_plan_has_a_change_for_every_ledger_state() -> None:
    assert set(planning._BY_STATE) == set(JobState)
    assert {info.change for info in VOCABULARY.values()} <= {change.value for change in planning.Change}
    # a job with no row is new (or changed, which the plan works out from the label)
    assert VOCABULARY[PLANNED].change == planning.Change.NEW.value


def test_in_flight_and_charged_are_the_vocabularys() -> None:
    for state in JobState:
        info = VOCABULARY[state.value]
        assert (state.in_flight, state.charged) == (info.in_flight, info.charged), state
        assert not state.in_flight or planning._BY_STATE[state] is planning.Change.IN_FLIGHT


def test_each_tone_has_its_colours_in_the_report_stylesheet() -> None:
    from seedance_batch.review.page import asset

    css = html.palette_css()  # what report.html inlines first, and the review's stylesheet starts with
    for tone in {info.tone for info in VOCABULARY.values()}:
        assert f"--{tone}:" in css, tone
    assert asset("review.css").body.decode("utf-8").startswith(css)


def test_the_run_summary_counts_in_the_same_words() -> None:
    record = JobRecord(campaign="c", key="k", label="s/a", shot="s", request={}, state=JobState.DONE,
                       cost_usd=Decimal("1"))
    counts = RunResult(records=[record], planned=3).counts()
    assert counts == {"done": 1, PLANNED: 2}
    assert set(counts) <= EVERY_STATE
