"""The webhook receiver: both shapes, only our task ids, persisted before 2xx, idempotent;
and a run driven by the simulator's callbacks (duplicates, stale events, flat shape)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import httpx
import pytest

from engine_support import SCALE, SIM_KEY, make_jobs, plan_for, settings
from seedance_batch.ledger import JobState, Ledger, open_ledger
from seedance_batch.run.client import ApiClient
from seedance_batch.run.engine import execute
from seedance_batch.simulator import SimulatorConfig, WebhookFaults, run_simulator
from seedance_batch.webhooks import EventRelay, run_receiver

REQUEST = {"model": "seedance-2-fast", "input": {"prompt": "p", "duration": 4, "resolution": "480p"}}


@pytest.fixture
def ledger(tmp_path: Path):
    with open_ledger(tmp_path / "ledger.sqlite") as opened:
        opened.begin_submit(campaign="c", key="k1", label="s/one", shot="s", request=REQUEST, credits=56,
                            cost_usd=Decimal("0.28"), output_path="c/s/one.mp4")
        opened.submitted("c", "k1", "task-1", "not_started")
        yield opened


def test_receiver_accepts_both_shapes_persists_first_and_is_idempotent(ledger: Ledger) -> None:
    seen = []
    with run_receiver(ledger, on_event=seen.append, campaign="c") as url, httpx.Client(base_url=url) as http:
        files = [{"file_url": "http://files/v.mp4?sig=1", "file_type": "video"}]
        nested = http.post("/hook", json={"data": {"task_id": "task-1", "status": "finished", "files": files}})
        assert nested.status_code == 200
        # persisted before the 2xx came back, as a hint: the status endpoint decides, and an
        # unsigned event's file URL is never trusted (a forged one would plant a video)
        assert ledger.events("c")[-1].detail == {"status": "finished", "files": 1}
        rec = ledger.record("c", "k1")
        assert (rec.state, rec.file_url) == (JobState.SUBMITTED, None)
        flat = http.post("/hook", json={"task_id": "task-1", "status": "finished", "files": files})
        assert flat.status_code == 200  # a duplicate: accepted, changes nothing
        stale = http.post("/hook", json={"task_id": "task-1", "status": "running", "files": []})
        assert stale.status_code == 200
        assert ledger.record("c", "k1").state is JobState.SUBMITTED
        stranger = http.post("/hook", json={"task_id": "task-not-ours", "status": "finished", "files": []})
        assert (stranger.status_code, stranger.json()["error"]) == (404, "unknown task id")
        bad = http.post("/hook", json={"data": {"status": "finished"}})
        assert bad.status_code == 400 and bad.json()["error"].startswith("task_id is missing")
        assert http.post("/hook", content=b"not json").json()["error"] == "the body is not JSON"
    assert [e.task_id for e in seen] == ["task-1", "task-1", "task-1"]
    assert [e.kind for e in ledger.events("c")].count("webhook") == 3


def test_a_failed_event_alone_does_not_fail_a_job(ledger: Ledger) -> None:
    # unsigned events are hints: the status endpoint decides (a forged "failed" could cost a resubmit)
    with run_receiver(ledger, campaign="c") as url:
        assert httpx.post(f"{url}/hook", json={"task_id": "task-1", "status": "failed"}).status_code == 200
    assert ledger.record("c", "k1").state is JobState.SUBMITTED
    assert ledger.events("c")[-1].detail["status"] == "failed"


def test_a_run_driven_by_callbacks_with_duplicates_and_stale_events(tmp_path: Path) -> None:
    jobs = make_jobs(12)
    hooks = WebhookFaults(duplicate=1.0, out_of_order=1.0, shape="flat")
    with open_ledger(tmp_path / "run.sqlite") as ledger, \
            run_simulator(SimulatorConfig(time_scale=SCALE, webhooks=hooks)) as sim:
        relay = EventRelay()
        with run_receiver(ledger, on_event=relay, campaign="demo") as url:
            run_settings = settings(tmp_path, callback_url=f"{url}/apidot")

            async def go():
                async with ApiClient(sim.base_url, SIM_KEY) as client:
                    return await execute(plan_for(jobs, ledger), run_settings, client=client, ledger=ledger,
                                         events=relay)

            result = anyio.run(go)
        stats = sim.stats()
        events = ledger.events("demo")
    assert result.counts() == {"done": 12}
    assert stats["webhooks"]["duplicates"] > 0 and stats["webhooks"]["delivered"] >= 12
    assert sum(1 for e in events if e.kind == "webhook") >= 12
    assert sum(1 for e in events if e.kind == "downloaded") == 12  # one download per job, duplicates or not
    assert set(stats["submits"]["by_body"].values()) == {1}
