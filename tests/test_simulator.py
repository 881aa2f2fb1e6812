"""The APIDot simulator, driven with httpx over loopback against a real uvicorn server."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from seedance_batch.errors import UsageError
from seedance_batch.expand import request_key
from seedance_batch.simulator import (
    Answers,
    Faults,
    Latency,
    SimulatorConfig,
    WebhookFaults,
    run_simulator,
    serve_in_thread,
)
from seedance_batch.simulator.config import parse_knobs
from seedance_batch.simulator.tasks import FAILURE_MESSAGES

KEY = {"Authorization": "Bearer sk-sim-test"}
BODY = {"model": "seedance-2", "input": {"prompt": "a red kite over a beach", "duration": 5, "resolution": "720p"}}
# No jitter, so a task's timeline is known exactly: queued 10 s, then 20 + 2 x 5 = 30 s running.
EXACT = Latency(queue_seconds=10, base_seconds=20, per_video_second=2, jitter=0)
FAST = 0.0005  # time_scale: a whole task life takes a few milliseconds
# Every answer in one shape (files at data.output.files, only the video, "finished"), for the
# tests about something else; the shapes themselves are tested in test_simulator_realism.py.
PLAIN = Answers(files_at_data=0, thumbnail=0, completed=0)
# The rate limit earlier versions had (60 s sliding window, Retry-After always), for the tests of it.
SLIDING = {"rate_window": 60.0, "rate_limit_mode": "sliding", "retry_after": True}


class Clock:
    """A clock the test steps by hand (epoch seconds)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def body(**changes: Any) -> dict[str, Any]:
    return {"model": BODY["model"], "input": {**BODY["input"], **changes}}


@contextmanager
def simulator(clock: Clock | None = None, **knobs: Any) -> Iterator[tuple[Any, httpx.Client]]:
    config = SimulatorConfig(**{"answers": PLAIN, **knobs})
    kwargs = {"clock": clock} if clock else {}
    with run_simulator(config, **kwargs) as sim, httpx.Client(base_url=sim.base_url, headers=KEY, timeout=10) as http:
        yield sim, http


def submit(http: httpx.Client, payload: Any = None, **kwargs: Any) -> httpx.Response:
    return http.post("/api/generate/submit", json=BODY if payload is None else payload, **kwargs)


def status(http: httpx.Client, task_id: str) -> dict[str, Any]:
    response = http.get(f"/api/generate/status/{task_id}")
    assert response.status_code == 200, response.text
    return response.json()["data"]


def wait_for(condition: Any, timeout: float = 10.0) -> Any:
    """Poll ``condition`` until it returns something truthy (fails the test after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    pytest.fail(f"condition not met within {timeout} s")


# -- auth and validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk-live-123"}, {"Authorization": "sk-sim-1"}])
def test_submit_without_a_good_key_is_401(headers: dict[str, str]) -> None:
    with simulator() as (sim, _):
        response = httpx.post(f"{sim.base_url}/api/generate/submit", json=BODY, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"code": 401, "error": {
        "type": "authentication_error", "message": "missing or invalid API key; send Authorization: Bearer <key>"}}


def test_an_exact_api_key_replaces_the_prefix_rule() -> None:
    with simulator(api_key="sk-sim-only") as (sim, http):
        assert submit(http).status_code == 401
        assert submit(http, headers={"Authorization": "Bearer sk-sim-only"}).status_code == 200
        assert sim.stats()["config"]["api_key"] == "***"


@pytest.mark.parametrize(("payload", "message"), [
    (body(duration=3), "input.duration: duration 3 is out of range; allowed: 4 to 15 seconds"),
    ({"model": "seedance-2-fast", "input": {**BODY["input"], "resolution": "1080p"}},
     "input.resolution: resolution '1080p' is not offered by seedance-2-fast; allowed: 480p, 720p"),
    (body(image_urls=["https://x.test/a.png"], reference_video_urls=["https://x.test/v.mp4"]),
     "input.image_urls: frame mode (image_urls) and reference mode (reference_video_urls) cannot be mixed in one request"),
    ({"model": "seedance-2", "input": {"duration": 5, "resolution": "720p"}},
     "input.prompt: prompt is required and must be non-empty text"),
    ({**BODY, "callback_url": "ftp://x.test/hook"}, "callback_url: callback_url must be an absolute http(s) URL"),
    ([1, 2], "body: the request body must be a JSON object"),
])
def test_invalid_submit_is_400_naming_the_field(payload: Any, message: str) -> None:
    with simulator() as (sim, http):
        response = submit(http, payload)
        assert response.status_code == 400
        assert response.json() == {"code": 400, "error": {"type": "invalid_request_error", "message": message}}
        assert sim.stats()["tasks"]["total"] == 0


def test_a_body_that_is_not_json_is_400() -> None:
    with simulator() as (_, http):
        response = http.post("/api/generate/submit", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.json()["error"]["message"] == "body: the request body is not valid JSON"


def test_several_problems_are_reported_together() -> None:
    with simulator() as (_, http):
        message = submit(http, body(duration=20, aspect_ratio="2:1")).json()["error"]["message"]
    assert message.split("; ")[0] == "input.duration: duration 20 is out of range"
    assert "input.aspect_ratio: aspect ratio '2:1' is not allowed" in message


# -- task life, files ------------------------------------------------------------------------------


def test_task_life_follows_the_clock_and_the_latency_model() -> None:
    clock = Clock()
    with simulator(clock, latency=EXACT, time_scale=0.5) as (_, http):
        answer = submit(http).json()
        task_id = answer["data"]["task_id"]
        assert answer["data"]["status"] == "not_started"
        seen = []
        for step in (4.9, 0.2, 14.7, 0.2):  # queue ends at 5 s, render at 5 + 15 s (scale 0.5)
            clock.advance(step)
            seen.append(status(http, task_id)["status"])
    assert seen == ["not_started", "running", "running", "finished"]


def test_a_task_finishes_in_real_time_when_time_is_scaled_down() -> None:
    with simulator(time_scale=FAST) as (sim, http):
        task_id = submit(http).json()["data"]["task_id"]
        done = wait_for(lambda: (data := status(http, task_id))["status"] == "finished" and data)
        assert done["output"]["files"][0]["file_type"] == "video"
        assert done["error_message"] is None
        assert sim.stats()["tasks"]["by_state"] == {"not_started": 0, "running": 0, "finished": 1, "failed": 0}


def test_status_of_an_unknown_task_is_404() -> None:
    with simulator() as (_, http):
        response = http.get("/api/generate/status/task-nope")
    assert response.status_code == 404
    assert response.json()["error"] == {"type": "not_found", "message": "no task 'task-nope'"}


def test_the_file_is_a_real_mp4_and_its_url_expires_and_is_refreshed() -> None:
    clock = Clock()
    with simulator(clock, time_scale=FAST, url_ttl=60) as (sim, http):
        task_id = submit(http).json()["data"]["task_id"]
        clock.advance(1)
        first = status(http, task_id)["output"]["files"][0]["file_url"]
        video = httpx.get(first)
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert video.content[4:8] == b"ftyp"
        clock.advance(61)
        expired = httpx.get(first)
        assert expired.status_code == 403
        assert expired.json()["error"]["type"] == "url_expired"
        fresh = status(http, task_id)["output"]["files"][0]["file_url"]
        assert fresh != first and httpx.get(fresh).content == video.content
        assert httpx.get(fresh.replace("signature=", "signature=0")).status_code == 403
        assert sim.stats()["files_served"] == 2


@pytest.mark.parametrize("query", ["expires=%C2%B2&signature=ab", "expires=9&signature=%C3%A9", "expires=-1&signature=ab"])
def test_a_hand_edited_file_url_is_a_403_not_a_crash(query: str) -> None:
    clock = Clock()
    with simulator(clock, time_scale=FAST) as (sim, http):
        task_id = submit(http).json()["data"]["task_id"]
        clock.advance(1)
        assert status(http, task_id)["status"] == "finished"
        response = httpx.get(f"{sim.base_url}/files/{task_id}/video.mp4?{query}")
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "forbidden"


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is not installed")
def test_the_served_video_is_playable_h264_with_aac(tmp_path: Any) -> None:
    with simulator(time_scale=FAST) as (_, http):
        task_id = submit(http).json()["data"]["task_id"]
        url = wait_for(lambda: (status(http, task_id).get("output") or {}).get("files"))[0]["file_url"]
        (tmp_path / "v.mp4").write_bytes(httpx.get(url).content)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "json", str(tmp_path / "v.mp4")],
        capture_output=True, text=True, check=True,
    )
    assert sorted(s["codec_name"] for s in json.loads(probe.stdout)["streams"]) == ["aac", "h264"]


# -- credits and rate limits -----------------------------------------------------------------------


def test_submits_beyond_the_balance_get_402() -> None:
    with simulator(credits=450) as (sim, http):  # 720p, 5 s, no video input: 40 x 5 = 200 credits
        assert [submit(http, body(prompt=f"shot {i}")).status_code for i in range(2)] == [200, 200]
        refused = submit(http, body(prompt="shot 3"))
        assert refused.status_code == 402
        message = "this job costs 200 credits; 50 credits left"
        assert refused.json() == {"code": 402, "error": {"type": "insufficient_credits", "message": message},
                                  "message": message}
        assert submit(http, body(prompt="cheap", resolution="480p", duration=4)).status_code == 402  # 80 > 50
        assert sim.stats()["credits"] == {"balance": 450, "spent": 400, "refunded": 0, "left": 50}


def test_submits_past_the_rate_limit_get_429_with_retry_after() -> None:
    clock = Clock()
    with simulator(clock, submits_per_minute=2, **SLIDING) as (sim, http):
        codes = [submit(http, body(prompt=f"p{i}")).status_code for i in range(2)]
        clock.advance(20)
        limited = submit(http, body(prompt="p2"))
        assert codes == [200, 200] and limited.status_code == 429
        assert limited.headers["Retry-After"] == "40"  # the first submit leaves the window at 60 s
        assert limited.json()["error"]["type"] == "rate_limited"
        clock.advance(40)
        assert submit(http, body(prompt="p2")).status_code == 200
        assert sim.stats()["rate_limited"] == {"submit": 1, "status": 0}


def test_the_rate_limit_window_is_a_service_minute() -> None:
    clock = Clock()
    with simulator(clock, submits_per_minute=1, time_scale=0.5, **SLIDING) as (_, http):  # a minute lasts 30 s
        assert submit(http, body(prompt="a")).status_code == 200
        clock.advance(10)
        limited = submit(http, body(prompt="b"))
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "20"
        clock.advance(20)
        assert submit(http, body(prompt="b")).status_code == 200


def test_status_calls_have_their_own_limit() -> None:
    clock = Clock()
    with simulator(clock, status_per_minute=1, **SLIDING) as (sim, http):
        task_id = submit(http).json()["data"]["task_id"]
        assert http.get(f"/api/generate/status/{task_id}").status_code == 200
        limited = http.get(f"/api/generate/status/{task_id}")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "60"
        assert sim.stats()["rate_limited"] == {"submit": 0, "status": 1}


# -- faults ----------------------------------------------------------------------------------------


def test_a_server_error_fault_answers_5xx_and_creates_nothing() -> None:
    with simulator(faults=Faults(server_error=1.0)) as (sim, http):
        codes = {submit(http, body(prompt=f"p{i}")).status_code for i in range(20)}
        stats = sim.stats()
    assert codes == {500, 502, 503}
    assert stats["faults"]["server_error"] == 20 and stats["tasks"]["total"] == 0


def test_a_dropped_connection_sends_no_answer_and_creates_nothing() -> None:
    with simulator(faults=Faults(drop=1.0)) as (sim, http):
        with pytest.raises(httpx.RemoteProtocolError, match="Server disconnected without sending a response"):
            submit(http)
        assert sim.stats()["submits"]["accepted"] == 0


def test_a_malformed_answer_is_not_json_and_creates_nothing() -> None:
    with simulator(faults=Faults(malformed=1.0)) as (sim, http):
        response = submit(http)
        assert response.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            response.json()
        assert sim.stats()["submits"]["accepted"] == 0


def test_an_error_code_inside_http_200() -> None:
    with simulator(faults=Faults(error_code=1.0)) as (sim, http):
        response = submit(http)
        assert response.status_code == 200 and response.json()["code"] == 500
        assert sim.stats()["submits"]["accepted"] == 0


def test_a_slow_answer_outlasts_the_client_but_the_task_exists() -> None:
    with simulator(faults=Faults(slow=1.0, slow_seconds=5)) as (sim, http):
        with pytest.raises(httpx.ReadTimeout):
            submit(http, timeout=0.3)
        assert sim.stats()["submits"]["by_body"] == {request_key(BODY): 1}


def test_a_slow_answer_within_the_client_timeout_arrives() -> None:
    with simulator(faults=Faults(slow=1.0, slow_seconds=0.05)) as (_, http):
        assert submit(http).json()["data"]["status"] == "not_started"


def test_the_ambiguous_submit_creates_the_task_and_never_answers() -> None:
    with simulator(faults=Faults(ambiguous_submit=1.0, hang_seconds=0.2)) as (sim, http):
        with pytest.raises(httpx.ReadTimeout):  # the client gives up first
            submit(http, timeout=0.1)
        with pytest.raises(httpx.RemoteProtocolError):  # a patient client sees the line dropped
            submit(http, body(prompt="patient"))
        stats = sim.stats()
    assert stats["submits"]["by_body"] == {request_key(BODY): 1, request_key(body(prompt="patient")): 1}
    assert stats["tasks"]["total"] == 2 and stats["faults"]["ambiguous_submit"] == 2


def test_faults_can_be_limited_to_the_status_endpoint() -> None:
    with simulator(faults=Faults(drop=1.0, on=frozenset({"status"}))) as (_, http):
        task_id = submit(http).json()["data"]["task_id"]
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(f"/api/generate/status/{task_id}")


def test_tasks_that_fail_say_why() -> None:
    with simulator(time_scale=FAST, faults=Faults(task_fail=1.0)) as (sim, http):
        task_id = submit(http).json()["data"]["task_id"]
        data = wait_for(lambda: (d := status(http, task_id))["status"] != "not_started" and d["status"] != "running" and d)
        assert data["status"] == "failed" and data["output"] is None
        assert data["error_message"] in FAILURE_MESSAGES
        assert sim.stats()["tasks"]["by_state"]["failed"] == 1


def test_stuck_tasks_never_finish() -> None:
    clock = Clock()
    with simulator(clock, faults=Faults(task_stuck=1.0)) as (_, http):
        task_id = submit(http).json()["data"]["task_id"]
        clock.advance(10**7)
        assert status(http, task_id)["status"] == "running"


def outcomes(seed: int, prompts: list[str]) -> dict[str, str]:
    """What each body met, with a third of requests faulted one way or another."""
    faults = Faults(seed=seed, server_error=0.1, error_code=0.1, malformed=0.1, task_fail=0.5, on=frozenset({"submit"}))
    clock = Clock()
    seen = {}
    with simulator(clock, faults=faults) as (_, http):
        for prompt in prompts:
            response = submit(http, body(prompt=prompt))
            try:
                answer = response.json()
            except json.JSONDecodeError:
                seen[prompt] = "fault: malformed"
                continue
            if response.status_code != 200 or answer["code"] != 200:
                seen[prompt] = f"fault: {response.status_code}/{answer['code']}"
                continue
            clock.advance(10**4)
            seen[prompt] = status(http, answer["data"]["task_id"])["status"]
    return seen


def test_faults_are_reproducible_from_the_seed_whatever_the_order() -> None:
    prompts = [f"shot {i}" for i in range(30)]
    first = outcomes(7, prompts)
    assert outcomes(7, prompts[::-1]) == first
    assert outcomes(8, prompts) != first
    assert {"finished", "failed"} <= set(first.values()) and any(v.startswith("fault") for v in first.values())


def test_a_crash_inside_a_handler_answers_500(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr("seedance_batch.simulator.service.make_task", broken)
    with simulator() as (sim, http):
        response = submit(http)
        assert response.status_code == 500
        assert response.json() == {"code": 500, "error": {
            "type": "server_error", "message": "the simulator crashed: ZeroDivisionError"}}
        assert httpx.get(f"{sim.base_url}/_sim/stats").json()["errors"]["500"] == 1


def test_stopping_releases_a_held_answer_at_once() -> None:
    caught: list[BaseException] = []

    def patient_client(url: str) -> None:
        try:
            httpx.post(f"{url}/api/generate/submit", json=BODY, headers=KEY, timeout=60)
        except httpx.HTTPError as exc:
            caught.append(exc)

    with simulator(faults=Faults(ambiguous_submit=1.0)) as (sim, _):
        client = threading.Thread(target=patient_client, args=(sim.base_url,))
        client.start()
        wait_for(lambda: sim.stats()["faults"]["ambiguous_submit"] == 1)
    client.join(timeout=10)
    assert not client.is_alive()
    assert [type(e) for e in caught] == [httpx.RemoteProtocolError]


# -- webhooks --------------------------------------------------------------------------------------


class Receiver:
    """A tiny webhook receiver: a Starlette app under uvicorn on its own port."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Any]] = []
        self.changed = threading.Condition()
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> JSONResponse:
        event = await request.json()
        with self.changed:
            self.events.append((time.monotonic(), event))
            self.changed.notify_all()
        return JSONResponse({"ok": True})

    def wait(self, count: int, timeout: float = 10.0) -> list[Any]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.events) >= count, timeout), self.events
            return [event for _, event in self.events]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    hooks = Receiver()
    with serve_in_thread(hooks.app) as url:
        yield hooks, f"{url}/hook"


def test_a_terminal_event_is_posted_to_the_callback(receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    with simulator(time_scale=FAST) as (sim, http):
        task_id = submit(http, {**BODY, "callback_url": url}).json()["data"]["task_id"]
        [event] = hooks.wait(1)
        assert event["data"]["task_id"] == task_id and event["data"]["status"] == "finished"
        assert httpx.get(event["data"]["files"][0]["file_url"]).content[4:8] == b"ftyp"
        wait_for(lambda: sim.stats()["webhooks"]["delivered"] == 1)
        assert sim.stats()["submits"]["by_body"] == {request_key(BODY): 1}  # callback_url is not part of the key


def test_duplicate_stale_and_flat_deliveries(receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    webhooks = WebhookFaults(duplicate=1.0, out_of_order=1.0, shape="flat")
    with simulator(time_scale=FAST, faults=Faults(task_fail=1.0), webhooks=webhooks) as (sim, http):
        task_id = submit(http, {**BODY, "callback_url": url}).json()["data"]["task_id"]
        events = hooks.wait(3)
        wait_for(lambda: sim.stats()["webhooks"]["delivered"] == 3)
        stats = sim.stats()["webhooks"]
    terminal = {"task_id": task_id, "status": "failed", "files": []}
    assert events == [terminal, terminal, {"task_id": task_id, "status": "running", "files": []}]
    assert stats == {"scheduled": 1, "sent": 3, "delivered": 3, "failed": 0, "duplicates": 1, "delayed": 0, "stale": 1,
                     "dropped": 0, "signed": 0}


def test_delayed_deliveries_come_late(receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    late = WebhookFaults(delay=1.0, delay_seconds=0.3 / FAST)  # service seconds: 0.3 s real
    with simulator(time_scale=FAST, webhooks=late) as (sim, http):
        sent = time.monotonic()
        submit(http, {**BODY, "callback_url": url})
        hooks.wait(1)
        assert hooks.events[0][0] - sent >= 0.3
        assert sim.stats()["webhooks"]["delayed"] == 1


def test_a_receiver_that_is_down_is_counted_not_retried() -> None:
    with serve_in_thread(Starlette()) as gone:
        pass  # the port is free again: nothing listens there
    with simulator(time_scale=FAST) as (sim, http):
        submit(http, {**BODY, "callback_url": f"{gone}/hook"})
        wait_for(lambda: sim.stats()["webhooks"]["failed"] == 1)
        assert sim.stats()["webhooks"]["sent"] == 1


# -- stats, config, the command --------------------------------------------------------------------


def test_stats_count_submits_per_job_key_and_status_calls() -> None:
    with simulator(time_scale=FAST) as (sim, http):
        first = submit(http).json()["data"]["task_id"]
        submit(http, {**BODY, "callback_url": "http://127.0.0.1:9/hook"})  # same job, sent twice
        submit(http, body(prompt="other"))
        status(http, first)
        stats = httpx.get(f"{sim.base_url}/_sim/stats").json()
    assert stats["submits"]["by_body"] == {request_key(BODY): 2, request_key(body(prompt="other")): 1}
    assert stats["submits"]["requests"] == 3 and stats["submits"]["accepted"] == 3
    assert stats["status_calls"] == 1 and stats["tasks"]["total"] == 3
    assert stats["credits"] == {"balance": None, "spent": 600, "refunded": 0, "left": None}


def test_bad_knobs_are_usage_errors() -> None:
    with pytest.raises(UsageError, match=r"request fault rates add up to 1\.2; they must add up to at most 1"):
        Faults(drop=0.6, slow=0.6)
    with pytest.raises(UsageError, match="time_scale must be above 0"):
        SimulatorConfig(time_scale=0)
    assert parse_knobs(["drop=0.5", "slow-seconds=3"], Faults, flag="--fault") == {"drop": 0.5, "slow_seconds": 3.0}
    with pytest.raises(UsageError, match="--fault 'drop': expected NAME=VALUE"):
        parse_knobs(["drop"], Faults, flag="--fault")
    with pytest.raises(UsageError, match=r"^faults.slow_seconds must be 0 or more seconds, got -5.0$"):
        Faults(slow_seconds=-5.0)
    with pytest.raises(UsageError, match=r"^faults.hang_seconds must be 0 or more seconds, got nan$"):
        Faults(hang_seconds=float("nan"))
    with pytest.raises(UsageError, match=r"^webhooks.delay_seconds must be 0 or more seconds, got -3.0$"):
        WebhookFaults(delay_seconds=-3.0)


def test_the_simulate_command_names_the_flag_to_fix_for_an_unknown_host() -> None:
    result = subprocess.run([sys.executable, "-m", "seedance_batch", "simulate", "--host", "no-such-host.invalid"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot listen on no-such-host.invalid:8750: ")
    assert result.stderr.endswith("; check --host\n") and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_the_simulate_command_serves_until_told_to_stop(stop: signal.Signals) -> None:
    command = [sys.executable, "-m", "seedance_batch", "simulate", "--port", "0", "--time-scale", "0.001"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        announced = [process.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
        assert announced[0].startswith("APIDot simulator listening on http://127.0.0.1:"), announced
        url = announced[0].split()[4]
        assert f"APIDOT_BASE_URL={url} APIDOT_API_KEY=sk-sim-" in announced[2]
        assert submit(httpx.Client(base_url=url, headers=KEY)).status_code == 200
        assert httpx.get(f"{url}/_sim/stats").json()["submits"]["accepted"] == 1
        process.send_signal(stop)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out == "simulator stopped\n" and err == ""


def test_the_simulate_command_rejects_a_bad_fault() -> None:
    result = subprocess.run([sys.executable, "-m", "seedance_batch", "simulate", "--fault", "drop=2"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr == "error: faults.drop must be a probability from 0 to 1, got 2.0\n"
