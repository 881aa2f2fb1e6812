"""Webhooks as the main path: the receiver (both shapes, only our task ids, persisted before 2xx,
idempotent), runs driven by the simulator's callbacks (duplicates, stale events, flat shape,
every callback lost), and callbacks reaching a run through the ledger alone."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import anyio
import httpx
import pytest

from engine_support import SIM_KEY, make_jobs, plan_for, settings
from seedance_batch.ledger import AsyncLedger, JobState, Ledger, open_ledger
from seedance_batch.run.client import ApiClient
from seedance_batch.run.engine import RunResult, RunSettings, execute
from seedance_batch.run.events import EventFeed
from seedance_batch.simulator import Faults, SimulatorConfig, WebhookFaults, run_simulator
from seedance_batch.verifiers import LedgerTokens, mint_token, token_digest, with_token
from seedance_batch.verifiers.secret_path import SecretPath
from seedance_batch.webhooks import EventRelay, run_receiver, secret_path_for

REQUEST = {"model": "seedance-2-fast", "input": {"prompt": "p", "duration": 4, "resolution": "480p"}}
TOKEN = mint_token()
# Slower than the other run tests' 0.004: a safety poll lands ~60 service seconds after a
# task should have called back, 0.6 s of real time here, far past any scheduling hiccup.
SCALE = 0.01
NEVER_STUCK = Faults(task_stuck=0.0)  # every task ends (the simulator's default leaves 0.5% running forever)


@pytest.fixture
def ledger(tmp_path: Path):
    with open_ledger(tmp_path / "ledger.sqlite") as opened:
        opened.begin_submit(campaign="c", key="k1", label="s/one", shot="s", request=REQUEST, credits=56,
                            cost_usd=Decimal("0.28"), output_path="c/s/one.mp4")
        opened.submitted("c", "k1", "task-1", "not_started")
        yield opened


def test_receiver_accepts_both_shapes_persists_first_and_is_idempotent(ledger: Ledger) -> None:
    seen = []
    with run_receiver(ledger, on_event=seen.append, campaign="c", verifiers=secret_path_for(TOKEN, "c")) as url, \
            httpx.Client(base_url=url) as http:
        hook = f"/hook/{TOKEN}"
        files = [{"file_url": "http://files/v.mp4?sig=1", "file_type": "video"}]
        nested = http.post(hook, json={"data": {"task_id": "task-1", "status": "finished", "files": files}})
        assert nested.status_code == 200
        # persisted before the 2xx came back, as a hint: the status endpoint decides, and an
        # unsigned event's file URL is never trusted (a forged one would plant a video)
        assert ledger.events("c")[-1].detail == {"status": "finished", "files": 1}
        rec = ledger.record("c", "k1")
        assert (rec.state, rec.file_url) == (JobState.SUBMITTED, None)
        flat = http.post(hook, json={"task_id": "task-1", "status": "finished", "files": files})
        assert flat.status_code == 200  # a duplicate: accepted, changes nothing
        stale = http.post(hook, json={"task_id": "task-1", "status": "running", "files": []})
        assert stale.status_code == 200
        assert ledger.record("c", "k1").state is JobState.SUBMITTED
        stranger = http.post(hook, json={"task_id": "task-not-ours", "status": "finished", "files": []})
        assert (stranger.status_code, stranger.json()["error"]) == (404, "unknown task id")
        bad = http.post(hook, json={"data": {"status": "finished"}})
        assert bad.status_code == 400 and bad.json()["error"].startswith("task_id is missing")
        assert http.post(hook, content=b"not json").json()["error"] == "the body is not JSON"
    assert [e.task_id for e in seen] == ["task-1", "task-1", "task-1"]
    assert [e.kind for e in ledger.events("c")].count("webhook") == 3


def test_a_failed_event_alone_does_not_fail_a_job(ledger: Ledger) -> None:
    # unsigned events are hints: the status endpoint decides (a forged "failed" could cost a resubmit)
    with run_receiver(ledger, campaign="c", verifiers=secret_path_for(TOKEN, "c")) as url:
        assert httpx.post(f"{url}/{TOKEN}", json={"task_id": "task-1", "status": "failed"}).status_code == 200
    assert ledger.record("c", "k1").state is JobState.SUBMITTED
    assert ledger.events("c")[-1].detail["status"] == "failed"


def _callback_settings(tmp_path: Path, url: str) -> RunSettings:
    return replace(settings(tmp_path, callback_url=with_token(f"{url}/apidot", TOKEN)), time_scale=SCALE)


def _run(ledger: Ledger, sim_url: str, jobs: list, run_settings: RunSettings,
         relay: EventRelay | None) -> RunResult:
    async def go() -> RunResult:
        async with ApiClient(sim_url, SIM_KEY) as client:
            return await execute(plan_for(jobs, ledger), run_settings, client=client, ledger=ledger, events=relay)

    return anyio.run(go)


def test_a_run_driven_by_callbacks_reconciles_each_job_with_one_status_call(tmp_path: Path) -> None:
    jobs = make_jobs(12)
    hooks = WebhookFaults(duplicate=1.0, out_of_order=1.0, shape="flat")  # every event twice, then a stale one
    with open_ledger(tmp_path / "run.sqlite") as ledger, \
            run_simulator(SimulatorConfig(time_scale=SCALE, webhooks=hooks, faults=NEVER_STUCK)) as sim:
        relay = EventRelay()
        with run_receiver(ledger, on_event=relay, campaign="demo", verifiers=secret_path_for(TOKEN, "demo")) as url:
            result = _run(ledger, sim.base_url, jobs, _callback_settings(tmp_path, url), relay)
        stats = sim.stats()
        events = ledger.events("demo")
    assert result.counts() == {"done": 12}
    assert stats["webhooks"]["duplicates"] == 12 and stats["webhooks"]["stale"] == 12
    assert sum(1 for e in events if e.kind == "webhook") == 36
    # one status call per job: the reconcile its callback asked for. Duplicates and stale
    # "running" events cost nothing, and no safety poll came before a callback.
    assert stats["status_calls"] == result.stats["status_calls"] == 12
    assert result.stats["callbacks"] == 12
    assert sum(1 for e in events if e.kind == "downloaded") == 12  # one download per job, duplicates or not
    assert set(stats["submits"]["by_body"].values()) == {1}


def test_a_run_whose_every_callback_is_lost_still_finishes_by_polling(tmp_path: Path) -> None:
    jobs = make_jobs(10)
    config = SimulatorConfig(time_scale=SCALE, webhooks=WebhookFaults(drop=1.0), faults=NEVER_STUCK)
    with open_ledger(tmp_path / "run.sqlite") as ledger, run_simulator(config) as sim:
        relay = EventRelay()
        with run_receiver(ledger, on_event=relay, campaign="demo", verifiers=secret_path_for(TOKEN, "demo")) as url:
            result = _run(ledger, sim.base_url, jobs, _callback_settings(tmp_path, url), relay)
        stats = sim.stats()
    assert result.counts() == {"done": 10} and result.exit_code == 0
    assert stats["webhooks"]["dropped"] == 10 and stats["webhooks"]["delivered"] == 0
    assert result.stats["callbacks"] == 0
    assert stats["status_calls"] <= 3 * len(jobs)  # rare: the safety net, not a polling loop


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a ledger several processes share is: one SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "shared.sqlite")
    return str(request.getfixturevalue("pg_url"))


def test_callbacks_reach_a_run_through_the_ledger_alone(tmp_path: Path, shared_ledger: str) -> None:
    """A `receive` elsewhere (or another runner's receiver): its own ledger connection, the run's
    secret known by its digest only, and no relay to the run: the run's cursor over the events
    table wakes each job, on either backend."""
    jobs = make_jobs(8)
    path = shared_ledger
    with open_ledger(path) as run_ledger, open_ledger(path) as receiver_ledger, \
            run_simulator(SimulatorConfig(time_scale=SCALE, faults=NEVER_STUCK)) as sim:
        run_ledger.add_callback_token("demo", token_digest(TOKEN))
        with run_receiver(receiver_ledger, verifiers=(SecretPath(LedgerTokens(receiver_ledger)),)) as url:
            result = _run(run_ledger, sim.base_url, jobs, _callback_settings(tmp_path, url), None)
        stats = sim.stats()
    assert result.counts() == {"done": 8}
    assert stats["webhooks"]["delivered"] == 8
    assert result.stats["callbacks"] == 8 and stats["status_calls"] == 8


def test_the_event_feed_reads_after_its_cursor_and_wakes_only_on_an_end(ledger: Ledger) -> None:
    ledger.note("c", "k1", "webhook", {"status": "finished", "files": 1})  # before the run: not read

    async def go() -> tuple[list[str], int]:
        woken: list[str] = []
        feed = EventFeed(AsyncLedger(ledger), "c", woken.append)
        await feed.start()
        for word in ("running", "not_started", "finished", "completed", "failed", "exploded"):
            ledger.note("c", "k1", "webhook", {"status": word, "files": 0})
        ledger.note("c", "k1", "status_error", {"error": "x"})  # another kind: not read
        assert await feed.read_once() == 6
        assert await feed.read_once() == 0  # nothing new since
        return woken, feed.woken

    woken, count = anyio.run(go)
    assert woken == ["task-1"] * 3 and count == 3
