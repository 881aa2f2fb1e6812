"""The ledger's contract, run against every backend: what seedance_batch.ledger.api promises.

Every operation of the Ledger Protocol; every transition, allowed, repeated or refused,
from every state (the grid below states the rules a second time, independently of
``TRANSITIONS``, and both are proven complete); the read-only guarantees; and two
writers at once, in two real processes: of two claims of one job exactly one wins.

A backend joins by a line in :data:`BACKENDS` (a fresh, empty ledger's location for a
test); the PostgreSQL backend (next issue) will add its own, on tests/pg_server.py.
Shaped after httpx's tests/test_exceptions.py: a mapping proven complete.
"""

from __future__ import annotations

import hashlib
import inspect
import multiprocessing
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from seedance_batch import ledger as ledger_package
from seedance_batch.errors import LedgerError
from seedance_batch.ledger import TRANSITIONS, AsyncLedger, JobState, Ledger, TransitionRefused, open_ledger
from seedance_batch.ledger.decisions import Decision, DecisionChange, Verdict
from seedance_batch.ledger.transitions import judge

# backend name -> a fresh, empty ledger's location for one test (its folder; its fixtures)
BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], str]] = {
    "sqlite": lambda folder, request: str(folder / "ledger.sqlite"),
    # a fresh database on the test session's own server (tests/pg_server.py)
    "postgresql": lambda folder, request: str(request.getfixturevalue("pg_url")),
}
# Backends shared by several runners at once: no exclusive run lock, and recover() never
# makes another runner's submitting row unknown (see Ledger.acquire_run_lock and recover).
SHARED = {"postgresql"}

CAMPAIGN = "c"
REQUEST = {"model": "seedance-2", "input": {"prompt": "a lighthouse", "duration": 5, "resolution": "720p"}}
S = JobState


@pytest.fixture(params=sorted(BACKENDS))
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh ledger of each backend is (nothing created yet)."""
    location: str = BACKENDS[request.param](tmp_path, request)
    return location


def shared(where: str) -> bool:
    """Whether the ledger at ``where`` is one several runners share (a database URL, not a file)."""
    return where.partition("://")[0] in SHARED


@pytest.fixture
def led(where: str) -> Iterator[Ledger]:
    with open_ledger(where) as opened:
        yield opened


def test_every_backend_of_the_package_is_in_this_suite() -> None:
    # each backend once, by one of its schemes (postgres:// is postgresql:// spelled libpq's other way)
    assert {ledger_package.BACKENDS[scheme] for scheme in BACKENDS} == set(ledger_package.BACKENDS.values())
    assert ledger_package.BACKENDS["postgres"] is ledger_package.BACKENDS["postgresql"]


# --- putting a job in each state through the interface ---------------------------------------

def begin(led: Ledger, key: str, *, resubmit: tuple[JobState, ...] = ()) -> Any:
    return led.begin_submit(campaign=CAMPAIGN, key=key, label=f"s/{key}", shot="s", request=REQUEST, credits=200,
                            cost_usd=Decimal("1.00"), output_path=f"c/s/{key}.mp4", resubmit=resubmit)


def put(led: Ledger, key: str, state: JobState | None) -> None:
    """Job ``key`` in ``state`` (None: no row), reached the way a run reaches it."""
    if state is None:
        return
    begin(led, key)
    if state is S.PENDING:
        led.release(CAMPAIGN, key, "rate_limited", "429")
    elif state is S.FAILED:
        led.failed(CAMPAIGN, key, "invalid_request", "400")
    elif state is S.UNKNOWN:
        led.unknown(CAMPAIGN, key, "no answer")
    elif state is not S.SUBMITTING:
        led.submitted(CAMPAIGN, key, f"task-{key}", "not_started")
        if state is S.TIMED_OUT:
            led.timed_out(CAMPAIGN, key, "run.timeout passed")
        elif state in (S.FINISHED, S.DONE):
            led.finished(CAMPAIGN, key, "https://files.example/v.mp4")
            if state is S.DONE:
                led.downloaded(CAMPAIGN, key, f"c/s/{key}.mp4", 1234, "ab" * 32)
    assert led.record(CAMPAIGN, key).state is state


# Each write, as a run makes it; the task id and the service's word are new to the row.
CALLS: dict[str, Callable[[Ledger, str], object]] = {
    "begin_submit": lambda led, key: begin(led, key),
    "submitted": lambda led, key: led.submitted(CAMPAIGN, key, "task-new", "not_started"),
    "release": lambda led, key: led.release(CAMPAIGN, key, "server_error", "503"),
    "unknown": lambda led, key: led.unknown(CAMPAIGN, key, "no answer"),
    "failed": lambda led, key: led.failed(CAMPAIGN, key, "task_failed", "the render failed", "failed"),
    "status_seen": lambda led, key: led.status_seen(CAMPAIGN, key, "running"),
    "finished": lambda led, key: led.finished(CAMPAIGN, key, "https://files.example/v2.mp4", source="webhook"),
    "downloaded": lambda led, key: led.downloaded(CAMPAIGN, key, f"c/s/{key}.mp4", 1234, "cd" * 32),
    "timed_out": lambda led, key: led.timed_out(CAMPAIGN, key, "run.timeout passed"),
}

# The rules, once more, as a grid: M moves the row, R is a repeat (nothing written, False),
# X is refused (TransitionRefused). Columns: no row, then each state in this order.
COLUMNS = (None, S.PENDING, S.SUBMITTING, S.SUBMITTED, S.FINISHED, S.DONE, S.FAILED, S.UNKNOWN, S.TIMED_OUT)
GRID = {  #        -  pend sbmg sbmd fin  done fail unkn t/o
    "begin_submit": "M  M    X    X    X    X    X    X    X",
    "submitted":    "X  X    M    X    X    X    X    M    X",
    "release":      "X  R    M    X    X    X    X    X    X",
    "unknown":      "X  X    M    X    X    X    X    R    X",
    "failed":       "X  M    M    M    M    X    R    X    M",
    "status_seen":  "X  X    X    M    X    X    X    X    M",
    "finished":     "X  X    X    M    M    X    X    X    M",
    "downloaded":   "X  X    X    X    M    R    X    X    X",
    "timed_out":    "X  X    X    M    M    X    X    X    R",
}
VERDICT = {"M": "move", "R": "repeat", "X": "refuse"}
CASES = [(op, state, VERDICT[mark]) for op, row in GRID.items() for state, mark in zip(COLUMNS, row.split(), strict=True)]


def _case_id(case: tuple[str, JobState | None, str]) -> str:
    op, state, verdict = case
    return f"{op}-from-{state.value if state else 'nothing'}-{verdict}"


def test_the_grid_and_the_transition_table_agree_and_are_complete() -> None:
    assert set(GRID) | {"recover"} == set(TRANSITIONS)
    assert set(GRID) == set(CALLS)
    for op, state, verdict in CASES:
        held = "task-new" if op == "submitted" else "running"  # a different id or word than the call's
        assert judge(TRANSITIONS[op], state, held=f"not {held}", value=held) == verdict, (op, state)


def test_every_write_of_the_protocol_has_a_transition_and_every_operation_an_async_form() -> None:
    operations = {name for name, _ in inspect.getmembers(Ledger, inspect.isfunction) if not name.startswith("_")}
    writes = operations - {"records", "record", "by_task_id", "events", "acquire_run_lock", "release_run_lock",
                           "note", "close", "companion", *CALLBACK_OPERATIONS, *DECISION_OPERATIONS, *MEDIA_OPERATIONS,
                           *COPY_OPERATIONS, *REFUND_OPERATIONS, *RUNNER_OPERATIONS}
    assert writes == set(TRANSITIONS)
    awaitable = {name for name, member in inspect.getmembers(AsyncLedger, inspect.iscoroutinefunction)
                 if not name.startswith("_")}
    # companion() opens a connection, as opening does: not a call to make from the event loop's side
    assert awaitable == operations - {"acquire_run_lock", "release_run_lock", "close", "companion", *COPY_OPERATIONS}


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_each_write_from_each_state(led: Ledger, case: tuple[str, JobState | None, str]) -> None:
    op, state, verdict = case
    put(led, "k1", state)
    before, trail = led.record(CAMPAIGN, "k1"), led.events(CAMPAIGN)
    if verdict == "refuse":
        with pytest.raises(TransitionRefused) as caught:
            CALLS[op](led, "k1")
        refused = caught.value
        assert (refused.operation, refused.state, refused.campaign, refused.key) == (op, state, CAMPAIGN, "k1")
        assert refused.label == ("s/k1" if state else "")
        assert led.record(CAMPAIGN, "k1") == before  # nothing changed...
        added = led.events(CAMPAIGN)[len(trail):]
        # ...but a task id the service created is never dropped
        assert [(e.kind, e.task_id) for e in added] == ([("task_refused", "task-new")] if op == "submitted" else [])
        return
    result = CALLS[op](led, "k1")
    after = led.record(CAMPAIGN, "k1")
    if verdict == "repeat":
        assert result is False
        assert (after, led.events(CAMPAIGN)) == (before, trail)
        return
    assert result is not False
    assert after is not None and after.state is TRANSITIONS[op].to
    added = led.events(CAMPAIGN)[len(trail):]
    assert [(e.kind, e.state) for e in added] == [(TRANSITIONS[op].event, TRANSITIONS[op].to.value)]


@pytest.mark.parametrize("state", [S.FAILED, S.UNKNOWN])
def test_a_failed_or_unknown_job_is_claimed_again_only_when_told(led: Ledger, state: JobState) -> None:
    put(led, "k1", state)
    other = S.UNKNOWN if state is S.FAILED else S.FAILED
    with pytest.raises(TransitionRefused):
        begin(led, "k1", resubmit=(other,))  # told about the other state only
    rec = begin(led, "k1", resubmit=(state,))
    assert (rec.state, rec.attempts, rec.task_id, rec.error_class) == (S.SUBMITTING, 2, None, None)


def test_only_failed_and_unknown_can_be_resubmitted(led: Ledger) -> None:
    with pytest.raises(ValueError, match="only failed and unknown jobs are submitted again"):
        begin(led, "k1", resubmit=(S.DONE,))
    assert led.record(CAMPAIGN, "k1") is None


@pytest.mark.parametrize("state", [S.SUBMITTED, S.FINISHED, S.DONE, S.TIMED_OUT])
def test_the_same_task_id_again_is_a_repeat(led: Ledger, state: JobState) -> None:
    put(led, "k1", state)
    before, trail = led.record(CAMPAIGN, "k1"), led.events(CAMPAIGN)
    assert led.submitted(CAMPAIGN, "k1", "task-k1", "not_started") is False
    assert (led.record(CAMPAIGN, "k1"), led.events(CAMPAIGN)) == (before, trail)


@pytest.mark.parametrize("state", [S.SUBMITTED, S.TIMED_OUT])
def test_the_same_service_word_again_is_a_repeat(led: Ledger, state: JobState) -> None:
    put(led, "k1", state)
    before = led.record(CAMPAIGN, "k1")
    assert led.status_seen(CAMPAIGN, "k1", before.api_status) is False
    assert led.record(CAMPAIGN, "k1") == before


def test_a_refusal_names_the_job_and_the_ledger(led: Ledger) -> None:
    put(led, "k1", S.DONE)
    with pytest.raises(TransitionRefused) as caught:
        begin(led, "k1")
    assert str(caught.value) == (f"{led.location}: job s/k1: not submitted: this job is done in the ledger (it is "
                                 "rendered already); nothing was sent; `seedance-batch plan` shows the campaign "
                                 "as it is now")
    with pytest.raises(TransitionRefused) as caught:
        led.finished(CAMPAIGN, "k1", "u")
    assert str(caught.value) == (f"{led.location}: job s/k1: the ledger refused to mark this job finished: it is "
                                 "done, and only a job that is finished or submitted or timed_out can be; nothing "
                                 "was changed; if another run uses this campaign, wait for it to finish")
    assert isinstance(caught.value, LedgerError)


# --- every operation -------------------------------------------------------------------------

def test_a_whole_life_is_recorded_and_read_back(led: Ledger) -> None:
    rec = begin(led, "k1")
    assert (rec.state, rec.attempts, rec.credits, rec.cost_usd, rec.label) == (S.SUBMITTING, 1, 200,
                                                                               Decimal("1.00"), "s/k1")
    assert led.submitted(CAMPAIGN, "k1", "task-1", "not_started")
    assert led.status_seen(CAMPAIGN, "k1", "running")
    assert led.finished(CAMPAIGN, "k1", "https://files.example/v.mp4")
    assert led.downloaded(CAMPAIGN, "k1", "c/s/k1.mp4", 1234, "ab" * 32)
    led.note(CAMPAIGN, "k1", "webhook", {"status": "finished"})
    done = led.record(CAMPAIGN, "k1")
    assert (done.state, done.task_id, done.api_status, done.size, done.sha256, done.output_path) == (
        S.DONE, "task-1", "finished", 1234, "ab" * 32, "c/s/k1.mp4")
    assert done.request == REQUEST and done.created_at and done.submitted_at and done.finished_at
    assert done.downloaded_at and done.updated_at
    assert led.by_task_id("task-1") == done and led.by_task_id("task-2") is None
    assert led.records(CAMPAIGN) == [done] and led.records("other") == []
    trail = led.events(CAMPAIGN)
    assert [e.kind for e in trail] == ["submitting", "submitted", "status", "finished", "downloaded", "webhook"]
    assert (trail[-1].state, trail[-1].task_id, trail[-1].detail) == ("done", "task-1", {"status": "finished"})
    assert [e.id for e in trail] == sorted(e.id for e in trail)


def test_records_come_oldest_first_and_money_is_exact(led: Ledger) -> None:
    for index in range(3):
        led.begin_submit(campaign=CAMPAIGN, key=f"k{index}", label=f"l{index}", shot="s", request=REQUEST,
                         credits=3, cost_usd=Decimal("0.015"), output_path=None)
    led.release(CAMPAIGN, "k0", "rate_limited", "429")
    begin(led, "k0")  # claimed again: keeps its place, re-priced
    assert [r.key for r in led.records(CAMPAIGN)] == ["k0", "k1", "k2"]
    assert sum(r.cost_usd for r in led.records(CAMPAIGN)) == Decimal("1.030")


def test_recover_makes_a_dead_runs_submits_unknown_once(where: str) -> None:
    with open_ledger(where) as first:
        put(first, "k1", S.SUBMITTING)
        put(first, "k2", S.SUBMITTED)
    with open_ledger(where) as after_a_crash:
        recovered = after_a_crash.recover()
        if shared(where):  # nothing says the runner that wrote it is dead: left as it is
            assert recovered == [] and after_a_crash.record(CAMPAIGN, "k1").state is S.SUBMITTING
            return
        assert [(r.key, r.state, r.error_class) for r in recovered] == [("k1", S.UNKNOWN, "ambiguous_submit")]
        assert after_a_crash.record(CAMPAIGN, "k2").state is S.SUBMITTED
        assert after_a_crash.events(CAMPAIGN)[-1].kind == "recovered"
        assert after_a_crash.recover() == []


def test_one_run_at_a_time_and_no_recovery_under_a_live_run(where: str) -> None:
    with open_ledger(where) as running, open_ledger(where) as other:
        running.acquire_run_lock()
        running.acquire_run_lock()  # idempotent
        put(running, "k1", S.SUBMITTING)  # a live submit
        if shared(where):
            other.acquire_run_lock()  # many runners at once: nobody is locked out...
        else:
            with pytest.raises(LedgerError, match="another seedance-batch run is using this ledger"):
                other.acquire_run_lock()
        assert other.recover() == []  # ...and a live runner's submit is never made unknown
        assert other.record(CAMPAIGN, "k1").state is S.SUBMITTING
        running.release_run_lock()
        running.release_run_lock()  # idempotent
        assert [r.key for r in other.recover()] == ([] if shared(where) else ["k1"])


def test_the_async_facade_does_the_same(led: Ledger) -> None:
    async def life() -> None:
        facade = AsyncLedger(led)
        await facade.begin_submit(campaign=CAMPAIGN, key="k1", label="s/k1", shot="s", request=REQUEST, credits=1,
                                  cost_usd=Decimal("0.01"), output_path=None)
        assert await facade.submitted(CAMPAIGN, "k1", "task-1", "not_started")
        assert not await facade.submitted(CAMPAIGN, "k1", "task-1", "not_started")
        with pytest.raises(TransitionRefused):
            await facade.downloaded(CAMPAIGN, "k1", "p", 1, "0" * 64)
        assert (await facade.record(CAMPAIGN, "k1")).state is S.SUBMITTED
        assert (await facade.by_task_id("task-1")).key == "k1"
        assert [e.kind for e in await facade.events(CAMPAIGN)] == ["submitting", "submitted"]
        assert await facade.recover() == []

    anyio.run(life)


# --- webhook callbacks: a cursor over the events, the runs' secrets as digests ---------------

# Not job transitions: a read (the cursor) and the callback tokens' own small table.
CALLBACK_OPERATIONS = {"events_after", "last_event_id", "add_callback_token", "revoke_callback_token",
                       "callback_tokens"}


def test_a_cursor_reads_the_events_of_its_kinds_after_an_id_in_order(led: Ledger) -> None:
    put(led, "k1", S.SUBMITTED)
    put(led, "k2", S.SUBMITTED)
    led.note(CAMPAIGN, "k1", "webhook", {"status": "finished", "files": 1})
    led.begin_submit(campaign="other", key="k1", label="s/k1", shot="s", request=REQUEST, credits=1,
                     cost_usd=Decimal("0.01"), output_path=None)
    led.note("other", "k1", "webhook", {"status": "finished"})
    led.note(CAMPAIGN, "k2", "status_error", {"error": "500"})
    led.note(CAMPAIGN, "k2", "webhook", {"status": "failed", "files": 0})
    every = led.events(CAMPAIGN)
    hooks = [e for e in every if e.kind == "webhook"]
    assert led.events_after(CAMPAIGN, 0, {"webhook"}) == hooks
    assert led.events_after(CAMPAIGN, hooks[0].id, {"webhook"}) == hooks[1:]
    assert led.events_after(CAMPAIGN, hooks[-1].id, {"webhook"}) == []
    assert led.events_after(CAMPAIGN, 0, {"webhook"}, limit=1) == hooks[:1]
    assert led.events_after(CAMPAIGN, 0, {"webhook", "submitted"}) == [e for e in every
                                                                        if e.kind in ("webhook", "submitted")]
    assert [e.campaign for e in led.events_after("other", 0, {"webhook"})] == ["other"]
    assert led.events_after(CAMPAIGN, 0, set()) == []
    assert led.last_event_id(CAMPAIGN) == every[-1].id and led.last_event_id("nobody") == 0


def test_callback_tokens_are_kept_as_given_listed_until_revoked(led: Ledger) -> None:
    first, second = hashlib.sha256(b"one").hexdigest(), hashlib.sha256(b"two").hexdigest()
    assert led.callback_tokens() == {}
    led.add_callback_token(CAMPAIGN, first)
    led.add_callback_token(CAMPAIGN, first)  # idempotent
    led.add_callback_token("other", second)
    assert led.callback_tokens() == {first: CAMPAIGN, second: "other"}
    led.revoke_callback_token(first)
    led.revoke_callback_token(first)  # idempotent
    led.revoke_callback_token("not-a-digest-of-ours")
    assert led.callback_tokens() == {second: "other"}
    led.add_callback_token(CAMPAIGN, first)  # a revoked secret stays revoked
    assert led.callback_tokens() == {second: "other"}


def test_callback_tokens_are_shared_between_openings(where: str) -> None:
    digest = hashlib.sha256(b"run").hexdigest()
    with open_ledger(where) as runner, open_ledger(where) as receiver:
        runner.add_callback_token(CAMPAIGN, digest)
        assert receiver.callback_tokens() == {digest: CAMPAIGN}
        runner.revoke_callback_token(digest)
        assert receiver.callback_tokens() == {}


def test_the_async_facade_reads_the_cursor_and_the_tokens(led: Ledger) -> None:
    put(led, "k1", S.SUBMITTED)
    led.note(CAMPAIGN, "k1", "webhook", {"status": "finished"})

    async def calls() -> None:
        facade = AsyncLedger(led)
        assert [e.kind for e in await facade.events_after(CAMPAIGN, 0, ["webhook"])] == ["webhook"]
        assert await facade.last_event_id(CAMPAIGN) == led.events(CAMPAIGN)[-1].id
        await facade.add_callback_token(CAMPAIGN, "ab" * 32)
        assert await facade.callback_tokens() == {"ab" * 32: CAMPAIGN}
        await facade.revoke_callback_token("ab" * 32)
        assert await facade.callback_tokens() == {}

    anyio.run(calls)


# --- the review's decisions: verdicts, one pick per combination, notes, their history ----------

# Not job transitions: the decisions have their own tables and rules (ledger/decisions.py).
DECISION_OPERATIONS = {"decide", "decisions", "decision_history"}
# The source media cache; its contract is tests/test_ledger_contract_media.py (same backends).
MEDIA_OPERATIONS = {"media_checks", "save_media_checks"}
APPROVE, REJECT, CLEAR = (DecisionChange(verdict=v) for v in (Verdict.APPROVED, Verdict.REJECTED, Verdict.UNDECIDED))
PICK, UNPICK = DecisionChange(picked=True), DecisionChange(picked=False)


def decide(led: Ledger, key: str, change: DecisionChange, *, combination: str = "hero|de-DE",
           reviewer: str = "ana", campaign: str = CAMPAIGN) -> list[Decision]:
    return led.decide(campaign, key, change, label=f"hero/{key}", combination=combination, reviewer=reviewer)


def _state(decisions: list[Decision]) -> dict[str, tuple[str, bool, str, str]]:
    return {d.key: (d.verdict.value, d.picked, d.note, d.reviewer) for d in decisions}


def test_each_change_is_committed_with_who_and_when_and_kept_in_the_history(led: Ledger) -> None:
    assert led.decisions(CAMPAIGN) == [] and led.decision_history(CAMPAIGN) == []
    [approved] = decide(led, "t1", APPROVE)
    assert (approved.campaign, approved.key, approved.label, approved.combination) == (
        CAMPAIGN, "t1", "hero/t1", "hero|de-DE")
    assert (approved.verdict, approved.picked, approved.note, approved.reviewer) == (Verdict.APPROVED, False, "", "ana")
    assert approved.at.endswith("Z") or "+00:00" in approved.at
    decide(led, "t1", DecisionChange(note="warmer grade, please\nand 2 s shorter"), reviewer="ben")
    decide(led, "t2", REJECT)
    assert _state(led.decisions(CAMPAIGN)) == {
        "t1": ("approved", False, "warmer grade, please\nand 2 s shorter", "ben"), "t2": ("rejected", False, "", "ana")}
    assert [(d.key, d.verdict.value, d.note, d.reviewer) for d in led.decision_history(CAMPAIGN)] == [
        ("t1", "approved", "", "ana"), ("t1", "approved", "warmer grade, please\nand 2 s shorter", "ben"),
        ("t2", "rejected", "", "ana")]
    assert led.decisions("other") == [] and led.decision_history("other") == []


def test_picking_approves_and_unpicks_the_other_take_of_its_combination_only(led: Ledger) -> None:
    decide(led, "t1", PICK)
    decide(led, "x1", PICK, combination="hero|fr-FR")  # another combination keeps its pick
    decide(led, "t1", PICK, campaign="other")  # so does another campaign
    changed = decide(led, "t2", PICK, reviewer="ben")
    assert [(d.key, d.verdict.value, d.picked, d.reviewer) for d in changed] == [
        ("t2", "approved", True, "ben"), ("t1", "approved", False, "ben")]
    assert _state(led.decisions(CAMPAIGN)) == {
        "t1": ("approved", False, "", "ben"), "x1": ("approved", True, "", "ana"), "t2": ("approved", True, "", "ben")}
    assert [(d.key, d.picked) for d in led.decision_history(CAMPAIGN)] == [
        ("t1", True), ("x1", True), ("t1", False), ("t2", True)]  # the unpick has its own line, before the pick
    assert _state(led.decisions("other")) == {"t1": ("approved", True, "", "ana")}


def test_rejecting_or_clearing_drops_the_pick_and_unpicking_keeps_the_verdict(led: Ledger) -> None:
    decide(led, "t1", PICK)
    decide(led, "t1", UNPICK)
    assert _state(led.decisions(CAMPAIGN))["t1"] == ("approved", False, "", "ana")
    decide(led, "t1", PICK)
    decide(led, "t1", REJECT)
    assert _state(led.decisions(CAMPAIGN))["t1"] == ("rejected", False, "", "ana")
    decide(led, "t2", PICK)
    decide(led, "t2", DecisionChange(note="keep"))
    decide(led, "t2", CLEAR)
    assert _state(led.decisions(CAMPAIGN))["t2"] == ("undecided", False, "keep", "ana")


def test_a_change_that_changes_nothing_writes_nothing(led: Ledger) -> None:
    decide(led, "t1", APPROVE)
    history = led.decision_history(CAMPAIGN)
    [same] = decide(led, "t1", APPROVE, reviewer="ben")
    assert same == led.decisions(CAMPAIGN)[0] and same.reviewer == "ana"
    decide(led, "t1", UNPICK)
    assert led.decision_history(CAMPAIGN) == history


@pytest.mark.parametrize(("reviewer", "why"), [("", "cannot be empty"), ("a" * 81, "at most 80"),
                                               ("ana\nbob", "one line"), ("ana\u202e", "one line")],
                         ids=["empty", "too-long", "newline", "bidi"])
def test_a_bad_reviewer_name_is_refused_and_nothing_is_written(led: Ledger, reviewer: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        decide(led, "t1", APPROVE, reviewer=reviewer)
    assert led.decisions(CAMPAIGN) == [] and led.decision_history(CAMPAIGN) == []


def test_every_opening_sees_the_others_decisions(where: str) -> None:
    with open_ledger(where) as ana, open_ledger(where) as ben:
        decide(ana, "t1", PICK)
        decide(ben, "t2", PICK, reviewer="ben")
        assert _state(ana.decisions(CAMPAIGN)) == _state(ben.decisions(CAMPAIGN)) == {
            "t1": ("approved", False, "", "ben"), "t2": ("approved", True, "", "ben")}


def test_a_read_only_opening_reads_decisions_and_refuses_to_decide(where: str) -> None:
    with open_ledger(where) as writer:
        decide(writer, "t1", APPROVE)
    looking = open_ledger(where, read_only=True)
    assert looking is not None
    with looking:
        assert _state(looking.decisions(CAMPAIGN)) == {"t1": ("approved", False, "", "ana")}
        with pytest.raises(LedgerError):
            decide(looking, "t1", REJECT)
        assert len(looking.decision_history(CAMPAIGN)) == 1


def test_the_async_facade_decides_and_reads(led: Ledger) -> None:
    async def calls() -> None:
        facade = AsyncLedger(led)
        assert [d.key for d in await facade.decide(CAMPAIGN, "t1", PICK, label="l", combination="c",
                                                   reviewer="ana")] == ["t1"]
        assert [d.picked for d in await facade.decisions(CAMPAIGN)] == [True]
        assert len(await facade.decision_history(CAMPAIGN)) == 1

    anyio.run(calls)


# --- moving a campaign's history in (ledger copy) --------------------------------------------

# Not job transitions, and never called from async code: `ledger copy` is a command of its own.
COPY_OPERATIONS = {"campaigns", "copy_in"}
# A refund is a line of the audit trail, not a move of the row (tests/test_ledger_contract_refunds.py).
REFUND_OPERATIONS = {"refunded"}
# Many runners on one ledger (tests/test_ledger_contract_claims.py): leases, takeover, the submit schedule.
RUNNER_OPERATIONS = {"join", "renew", "leave", "take_over", "claim", "delay_turns"}


def _history(folder: Path) -> tuple[list[Any], list[Any]]:
    """A campaign's rows and events in every state, from a SQLite ledger of its own (a user's old file)."""
    with open_ledger(folder / "source.sqlite") as source:
        for index, state in enumerate(COLUMNS[1:]):
            assert state is not None
            put(source, f"k{index}", state)
        source.note(CAMPAIGN, "k0", "webhook", {"status": "finished", "files": [1, 2]})
        put(source, "kr", S.SUBMITTED)  # a failed task the service refunded in part: the refund is an event
        source.failed(CAMPAIGN, "kr", "task_failed", "the render failed", "failed")
        source.refunded(CAMPAIGN, "kr", "task-kr", 50)
        assert source.record(CAMPAIGN, "kr").refund_credits == 50  # type: ignore[union-attr]
        return source.records(CAMPAIGN), source.events(CAMPAIGN)


def _contents(events: list[Any]) -> list[tuple[Any, ...]]:
    return [(e.campaign, e.key, e.label, e.at, e.kind, e.state, e.task_id, e.detail) for e in events]


def test_a_campaigns_history_is_copied_in_as_it_is_and_a_second_copy_writes_nothing(led: Ledger,
                                                                                      tmp_path: Path) -> None:
    records, events = _history(tmp_path)
    assert led.campaigns() == []
    counts = led.copy_in(CAMPAIGN, records, events)
    assert (counts.jobs_added, counts.jobs_same, counts.events_added, counts.events_same) == (
        len(records), 0, len(events), 0)
    assert led.records(CAMPAIGN) == records  # every column, in the same order
    assert _contents(led.events(CAMPAIGN)) == _contents(events)
    assert led.by_task_id("task-k2") == records[2]
    again = led.copy_in(CAMPAIGN, records, events)
    assert (again.jobs_added, again.jobs_same, again.events_added, again.events_same) == (
        0, len(records), 0, len(events))
    assert _contents(led.events(CAMPAIGN)) == _contents(events)
    assert led.campaigns() == [CAMPAIGN]
    # a copied job lives on as any other: the same rules from its state
    assert led.finished(CAMPAIGN, "k2", "https://files.example/v.mp4")
    with pytest.raises(TransitionRefused):
        begin(led, "k4")  # done


def test_a_row_that_differs_refuses_the_whole_copy_and_nothing_is_written(led: Ledger, tmp_path: Path) -> None:
    records, events = _history(tmp_path)
    put(led, "k2", S.FAILED)  # the destination has its own story for this job
    before, trail = led.records(CAMPAIGN), led.events(CAMPAIGN)
    with pytest.raises(LedgerError) as caught:
        led.copy_in(CAMPAIGN, records, events)
    assert not isinstance(caught.value, TransitionRefused)
    assert str(caught.value) == (f"{led.location}: job s/k2: not copied: this job's row differs in the destination: "
                                 "state, task_id, api_status, error_class and 4 more (it is failed there, submitted "
                                 "in the source); nothing was written; the destination has moved on since: copy "
                                 "the other way, or into another --state")
    assert (led.records(CAMPAIGN), led.events(CAMPAIGN)) == (before, trail)


def test_campaigns_are_every_campaign_with_a_row_or_an_event(led: Ledger) -> None:
    put(led, "k1", S.PENDING)
    led.note("only-events", "k9", "webhook", {})
    assert led.campaigns() == [CAMPAIGN, "only-events"]


def test_a_read_only_opening_copies_nothing_in(where: str, tmp_path: Path) -> None:
    records, events = _history(tmp_path)
    open_ledger(where).close()
    looking = open_ledger(where, read_only=True)
    assert looking is not None
    with looking, pytest.raises(LedgerError, match="read-only"):
        looking.copy_in(CAMPAIGN, records, events)


# --- read-only openings never write ---------------------------------------------------------

def _fingerprint(where: str) -> dict[str, str]:
    """What a ledger holds, by content: a database's schemas and every row of their tables; a file-based
    ledger's file and any write-ahead log with something in it.

    Not SQLite's ``-shm`` (the index every WAL reader maps, which a reader may create
    beside a writable file) nor an empty ``-wal``: neither holds any of the ledger.
    """
    if shared(where):
        return _database_fingerprint(where)
    folder = Path(where).parent
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.endswith("-shm") and p.stat().st_size}


def _database_fingerprint(url: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(url) as db:
        tables = db.execute("SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
                            "('pg_catalog', 'information_schema') ORDER BY 1, 2").fetchall()
        held = {"schemas": repr(db.execute("SELECT nspname FROM pg_namespace ORDER BY 1").fetchall())}
        for schema, table in tables:
            rows = sorted(map(repr, db.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()))
            held[f"{schema}.{table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return held


def test_nothing_there_yet_is_none_and_creates_nothing(where: str) -> None:
    before = _fingerprint(where)
    assert open_ledger(where, read_only=True) is None
    assert _fingerprint(where) == before


def test_a_read_only_opening_reads_and_never_writes(where: str) -> None:
    with open_ledger(where) as writer:
        put(writer, "k1", S.DONE)
        put(writer, "k2", S.SUBMITTING)  # left by a crashed run
    before = _fingerprint(where)
    looking = open_ledger(where, read_only=True)
    assert looking is not None
    with looking:
        assert [r.state for r in looking.records(CAMPAIGN)] == [S.DONE, S.SUBMITTING]
        assert looking.recover() == []  # never recovers
        with pytest.raises(LedgerError):
            looking.acquire_run_lock()
        for op, call in CALLS.items():
            with pytest.raises(LedgerError) as caught:
                call(looking, "k2")
            assert not isinstance(caught.value, TransitionRefused), op  # refused for being read-only
        with pytest.raises(LedgerError):
            looking.note(CAMPAIGN, "k1", "looked")
        assert [r.state for r in looking.records(CAMPAIGN)] == [S.DONE, S.SUBMITTING]
    assert _fingerprint(where) == before


# --- two writers at once: real processes -----------------------------------------------------

def _claim_all(where: str, keys: list[str], start: Any, results: Any) -> None:
    """In a child process: open the ledger, wait for the other, then claim every job."""
    outcome = {}
    with open_ledger(where) as led:
        led.records(CAMPAIGN)  # connected and warm: both start claiming at once
        start.wait(timeout=30)
        for key in keys:
            try:
                begin(led, key)
                outcome[key] = "won"
            except TransitionRefused as refused:
                outcome[key] = f"refused: {refused.state.value if refused.state else None}"
    results.put(outcome)


def _land_task(where: str, task_id: str, start: Any, results: Any) -> None:
    """In a child process: wait for the other, then commit ``task_id`` on job k1."""
    with open_ledger(where) as led:
        start.wait(timeout=30)
        try:
            results.put((task_id, "moved" if led.submitted(CAMPAIGN, "k1", task_id, "not_started") else "repeat"))
        except TransitionRefused as refused:
            results.put((task_id, f"refused: {refused.task_id}"))


def _race(target: Callable[..., None], where: str, *args_per_process: tuple[Any, ...]) -> list[Any]:
    context = multiprocessing.get_context("spawn")  # fresh processes, as two runners would be
    start, results = context.Barrier(len(args_per_process)), context.Queue()
    children = [context.Process(target=target, args=(where, *args, start, results)) for args in args_per_process]
    for child in children:
        child.start()
    for child in children:  # small results: a child never waits on the queue to exit
        child.join(timeout=60)
    assert [child.exitcode for child in children] == [0] * len(children), "a writer process failed"
    return [results.get(timeout=5) for _ in children]


def test_two_processes_claiming_the_same_jobs_each_job_is_claimed_once(where: str) -> None:
    keys = [f"k{index:03d}" for index in range(200)]
    open_ledger(where).close()  # created and migrated before the race
    first, second = _race(_claim_all, where, (keys,), (list(reversed(keys)),))
    for key in keys:
        assert sorted((first[key], second[key])) == ["refused: submitting", "won"], key
    with open_ledger(where) as led:
        assert {r.key: (r.state, r.attempts) for r in led.records(CAMPAIGN)} == {k: (S.SUBMITTING, 1) for k in keys}
        assert sorted(e.key for e in led.events(CAMPAIGN) if e.kind == "submitting") == keys


def test_two_processes_landing_different_task_ids_one_lands_the_other_is_kept(where: str) -> None:
    with open_ledger(where) as led:
        put(led, "k1", S.SUBMITTING)
    outcomes = dict(_race(_land_task, where, ("task-a",), ("task-b",)))
    assert sorted(outcomes.values()) in (["moved", "refused: task-b"], ["moved", "refused: task-a"])
    winner = next(task for task, how in outcomes.items() if how == "moved")
    loser = next(task for task in outcomes if task != winner)
    with open_ledger(where) as led:
        assert (led.record(CAMPAIGN, "k1").state, led.record(CAMPAIGN, "k1").task_id) == (S.SUBMITTED, winner)
        refused = [e for e in led.events(CAMPAIGN) if e.kind == "task_refused"]
        assert [(e.task_id, e.detail["row_task_id"]) for e in refused] == [(loser, winner)]


def test_two_processes_landing_the_same_task_id_one_moves_the_other_repeats(where: str) -> None:
    with open_ledger(where) as led:
        put(led, "k1", S.SUBMITTING)
    outcomes = _race(_land_task, where, ("task-a",), ("task-a",))
    assert sorted(how for _, how in outcomes) == ["moved", "repeat"]
    with open_ledger(where) as led:
        assert [e.kind for e in led.events(CAMPAIGN)] == ["submitting", "submitted"]


def _pick_many(where: str, prefix: str, start: Any, results: Any) -> None:
    """In a child process: pick, one after the other, 50 takes of each of 4 combinations."""
    with open_ledger(where) as led:
        led.decisions(CAMPAIGN)
        start.wait(timeout=30)
        for index in range(50):
            for combination in ("c0", "c1", "c2", "c3"):
                decide(led, f"{prefix}{combination}-{index}", PICK, combination=combination, reviewer=prefix)
    results.put(prefix)


def test_two_reviewers_picking_in_one_combination_at_once_leave_one_pick_per_combination(where: str) -> None:
    open_ledger(where).close()
    assert sorted(_race(_pick_many, where, ("ana",), ("ben",))) == ["ana", "ben"]
    with open_ledger(where) as led:
        current = led.decisions(CAMPAIGN)
        assert len(current) == 2 * 4 * 50
        picks = sorted(d.combination for d in current if d.picked)
        assert picks == ["c0", "c1", "c2", "c3"]
        # every pick but the last of each combination was undone, by a line of its own
        history = led.decision_history(CAMPAIGN)
        assert len(history) == 2 * len(current) - 4
        for decision in current:
            assert decision.verdict is Verdict.APPROVED
