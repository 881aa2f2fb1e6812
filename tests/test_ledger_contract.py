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
from seedance_batch.ledger.transitions import judge

# backend name -> a fresh, empty ledger's location inside a test's own folder
BACKENDS: dict[str, Callable[[Path], str]] = {
    "sqlite": lambda folder: str(folder / "ledger.sqlite"),
}

CAMPAIGN = "c"
REQUEST = {"model": "seedance-2", "input": {"prompt": "a lighthouse", "duration": 5, "resolution": "720p"}}
S = JobState


@pytest.fixture(params=sorted(BACKENDS))
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh ledger of each backend is (nothing created yet)."""
    location: str = BACKENDS[request.param](tmp_path)
    return location


@pytest.fixture
def led(where: str) -> Iterator[Ledger]:
    with open_ledger(where) as opened:
        yield opened


def test_every_backend_of_the_package_is_in_this_suite() -> None:
    assert set(ledger_package.BACKENDS) == set(BACKENDS)


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
                           "note", "close"}
    assert writes == set(TRANSITIONS)
    awaitable = {name for name, member in inspect.getmembers(AsyncLedger, inspect.iscoroutinefunction)
                 if not name.startswith("_")}
    assert awaitable == operations - {"acquire_run_lock", "release_run_lock", "close"}


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
        assert [(r.key, r.state, r.error_class) for r in recovered] == [("k1", S.UNKNOWN, "ambiguous_submit")]
        assert after_a_crash.record(CAMPAIGN, "k2").state is S.SUBMITTED
        assert after_a_crash.events(CAMPAIGN)[-1].kind == "recovered"
        assert after_a_crash.recover() == []


def test_one_run_at_a_time_and_no_recovery_under_a_live_run(where: str) -> None:
    with open_ledger(where) as running, open_ledger(where) as other:
        running.acquire_run_lock()
        running.acquire_run_lock()  # idempotent
        put(running, "k1", S.SUBMITTING)  # a live submit
        with pytest.raises(LedgerError, match="another seedance-batch run is using this ledger"):
            other.acquire_run_lock()
        assert other.recover() == []
        assert other.record(CAMPAIGN, "k1").state is S.SUBMITTING
        running.release_run_lock()
        running.release_run_lock()  # idempotent
        assert [r.key for r in other.recover()] == ["k1"]


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


# --- read-only openings never write ---------------------------------------------------------

def _fingerprint(where: str) -> dict[str, str]:
    """What a file-based ledger holds, by content: its file and any write-ahead log with something in it.

    Not SQLite's ``-shm`` (the index every WAL reader maps, which a reader may create
    beside a writable file) nor an empty ``-wal``: neither holds any of the ledger.
    """
    folder = Path(where).parent
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.endswith("-shm") and p.stat().st_size}


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
