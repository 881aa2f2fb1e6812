"""The simulator as the API really is: fixed rate windows, answer shapes, refunds, signed and lost callbacks.

Each test drives a real simulator over loopback (uvicorn in a thread) with httpx, and a
clock it steps by hand where time matters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import statistics
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
from seedance_batch.models import load_catalog, render_time
from seedance_batch.simulator import (
    Answers,
    Faults,
    Latency,
    SimulatorConfig,
    WebhookFaults,
    run_simulator,
    serve_in_thread,
)
from seedance_batch.simulator.knobs import parse_knobs
from seedance_batch.simulator.tasks import draw, make_task, queue_seconds

KEY = {"Authorization": "Bearer sk-sim-test"}
OTHER_KEY = {"Authorization": "Bearer sk-sim-other"}
BODY = {"model": "seedance-2", "input": {"prompt": "a red kite over a beach", "duration": 5, "resolution": "720p"}}
EXACT = Latency(queue_seconds=10, base_seconds=20, per_video_second=2, jitter=0)  # queued 10 s, running 30 s
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
START = 1_800_000_000.0  # a multiple of 10: the clock starts on a window's edge


class Clock:
    """A clock the test steps by hand (epoch seconds)."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def body(prompt: str, **changes: Any) -> dict[str, Any]:
    return {"model": "seedance-2", "input": {**BODY["input"], "prompt": prompt, **changes}}


@contextmanager
def simulator(clock: Clock | None = None, **knobs: Any) -> Iterator[tuple[Any, httpx.Client]]:
    kwargs = {"clock": clock} if clock else {}
    with run_simulator(SimulatorConfig(**knobs), **kwargs) as sim, \
            httpx.Client(base_url=sim.base_url, headers=KEY, timeout=10) as http:
        yield sim, http


def submit(http: httpx.Client, payload: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return http.post("/api/generate/submit", json=payload, headers=headers)


def status(http: httpx.Client, task_id: str) -> dict[str, Any]:
    response = http.get(f"/api/generate/status/{task_id}")
    assert response.status_code == 200, response.text
    return response.json()["data"]


def codes(http: httpx.Client, count: int, prefix: str, headers: dict[str, str] | None = None) -> list[int]:
    return [submit(http, body(f"{prefix}{i}"), headers).status_code for i in range(count)]


# -- rate windows ----------------------------------------------------------------------------------


def test_the_default_limit_is_a_fixed_10_s_window_with_429_until_it_ends_and_no_retry_after() -> None:
    clock = Clock(START + 2)  # 2 s into a window
    with simulator(clock, submits_per_minute=18) as (sim, http):  # 18 a minute: 3 per 10 s window
        assert codes(http, 3, "a") == [200, 200, 200]
        clock.advance(7.9)  # 9.9 s into the window
        limited = submit(http, body("a3"))
        assert limited.status_code == 429 and "retry-after" not in limited.headers
        message = "rate limit reached: at most 3 submits per 10 s; slow down and try again"
        assert limited.json() == {"code": 429, "error": {"message": message, "type": "rate_limited"},
                                  "message": message}
        clock.advance(0.1)  # the next window: a fresh count, however many were refused
        assert codes(http, 4, "b") == [200, 200, 200, 429]
        assert sim.stats()["rate_limited"] == {"submit": 2, "status": 0}
        assert sim.stats()["config"]["rate_limit_mode"] == "fixed"


def test_lockout_mode_answers_429_for_a_full_window_after_the_limit_trips() -> None:
    clock = Clock(START + 9)  # near a clock window's end: lockout windows are not on the clock
    with simulator(clock, submits_per_minute=12, rate_limit_mode="lockout") as (_, http):  # 2 per window
        assert codes(http, 3, "a") == [200, 200, 429]  # trips at +9 s
        clock.advance(9.9)  # a fixed window would have ended at +10 s
        assert codes(http, 1, "b") == [429]
        clock.advance(0.1)  # a full window after the trip: a fresh window starts
        assert codes(http, 3, "c") == [200, 200, 429]


def test_retry_after_is_sent_only_when_asked_for() -> None:
    clock = Clock(START + 2.5)
    with simulator(clock, submits_per_minute=6, retry_after=True) as (_, http):  # 1 per 10 s
        assert codes(http, 2, "a") == [200, 429]
        assert submit(http, body("x")).headers["Retry-After"] == "8"  # whole seconds to the window's end


def test_each_key_and_each_scope_has_its_own_window() -> None:
    clock = Clock(START)
    with simulator(clock, submits_per_minute=6, status_per_minute=6) as (_, http):  # 1 per window each
        first = submit(http, body("a")).json()["data"]["task_id"]
        assert codes(http, 1, "b") == [429]
        assert codes(http, 1, "c", OTHER_KEY) == [200]  # another key: its own count
        assert http.get(f"/api/generate/status/{first}").status_code == 200  # status: its own scope
        assert http.get(f"/api/generate/status/{first}").status_code == 429


def test_the_window_is_compressed_by_the_time_scale() -> None:
    clock = Clock(START)
    with simulator(clock, submits_per_minute=6, time_scale=0.1) as (_, http):  # a 10 s window lasts 1 s
        assert codes(http, 2, "a") == [200, 429]
        clock.advance(1.0)
        assert codes(http, 1, "b") == [200]


def test_the_old_sliding_minute_is_still_there_when_asked_for() -> None:
    clock = Clock(START)
    config = {"submits_per_minute": 2, "rate_window": 60.0, "rate_limit_mode": "sliding", "retry_after": True}
    with simulator(clock, **config) as (_, http):
        assert codes(http, 2, "a") == [200, 200]
        clock.advance(30)
        limited = submit(http, body("b"))
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "30"


# -- answer shapes ---------------------------------------------------------------------------------


@contextmanager
def finished(count: int, answers: Answers) -> Iterator[list[dict[str, Any]]]:
    """The status data of ``count`` tasks, each asked for once after it finished (the simulator still up)."""
    clock = Clock()
    with simulator(clock, latency=EXACT, answers=answers, faults=Faults(task_stuck=0)) as (_, http):
        ids = [submit(http, body(f"shot {i}")).json()["data"]["task_id"] for i in range(count)]
        clock.advance(41)
        yield [status(http, task_id) for task_id in ids]


def finished_tasks(count: int, answers: Answers) -> list[dict[str, Any]]:
    with finished(count, answers) as answered:
        return answered


def files_of(data: dict[str, Any]) -> list[dict[str, str]]:
    return data.get("files") or (data.get("output") or {}).get("files") or []


def test_files_are_at_data_files_for_some_tasks_and_data_output_files_for_others() -> None:
    answers = finished_tasks(40, Answers(thumbnail=0, completed=0))
    at_data = [a for a in answers if "files" in a]
    at_output = [a for a in answers if a["output"] is not None]
    assert len(at_data) + len(at_output) == 40 and 8 <= len(at_data) <= 32
    assert all(a["output"] is None for a in at_data) and all("files" not in a for a in at_output)


def test_some_tasks_list_an_image_thumbnail_before_their_video() -> None:
    with finished(40, Answers(files_at_data=0, completed=0)) as answers:
        with_thumbnail = [files_of(a) for a in answers if len(files_of(a)) == 2]
        assert 3 <= len(with_thumbnail) <= 20
        for first, video in with_thumbnail:
            assert first["file_type"] == "image" and video["file_type"] == "video"
            thumb = httpx.get(first["file_url"])
            assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
            assert thumb.content.startswith(b"\x89PNG") and httpx.get(video["file_url"]).content[4:8] == b"ftyp"


def test_a_thumbnail_url_signed_for_another_name_is_refused() -> None:
    with finished(1, Answers(files_at_data=0, completed=0, thumbnail=1)) as [data]:
        thumb_url, video_url = (f["file_url"] for f in files_of(data))
        forged = video_url.replace("video.mp4", "thumb.png")
        assert httpx.get(forged).status_code == 403 and httpx.get(thumb_url).status_code == 200


def test_some_finished_tasks_say_completed() -> None:
    words = [a["status"] for a in finished_tasks(60, Answers(completed=0.2))]
    assert set(words) == {"finished", "completed"} and 3 <= words.count("completed") <= 24
    assert all(files_of(a) for a in finished_tasks(10, Answers(completed=1.0)))


def test_progress_climbs_while_running_and_reaches_100() -> None:
    clock = Clock()
    with simulator(clock, latency=EXACT, faults=Faults(task_stuck=0)) as (_, http):
        task_id = submit(http, body("p")).json()["data"]["task_id"]
        seen = []
        for step in (5, 10, 15, 9.9, 0.2):  # queued until 10 s, running until 40 s
            clock.advance(step)
            data = status(http, task_id)
            seen.append((data["status"] if data["status"] != "completed" else "finished", data["progress"]))
    assert seen == [("not_started", 0), ("running", 16), ("running", 66), ("running", 99), ("finished", 100)]


def test_a_task_that_never_finishes_stays_running_below_100() -> None:
    clock = Clock()
    with simulator(clock, latency=EXACT, faults=Faults(task_stuck=1.0)) as (_, http):
        task_id = submit(http, body("p")).json()["data"]["task_id"]
        clock.advance(86400)
        data = status(http, task_id)
    assert data["status"] == "running" and data["progress"] == 99


def test_half_a_percent_of_tasks_never_finish_by_default() -> None:
    config = SimulatorConfig()
    fates = [make_task(config, BODY, f"key{i}", 0, START, 200).fate for i in range(20_000)]
    assert 0.003 <= fates.count("stuck") / len(fates) <= 0.007
    assert Faults(task_fail=1.0).stuck == 0.0 and Faults(task_fail=0.999).stuck == pytest.approx(0.001)
    with pytest.raises(UsageError, match=r"task_fail \+ task_stuck add up to 1\.1"):
        Faults(task_fail=0.6, task_stuck=0.5)


def test_file_urls_last_3_days_of_service_time_by_default() -> None:
    clock = Clock()
    with simulator(clock, latency=EXACT, time_scale=0.01, faults=Faults(task_stuck=0),
                   answers=Answers(files_at_data=0, thumbnail=0)) as (_, http):
        task_id = submit(http, body("p")).json()["data"]["task_id"]
        clock.advance(1)
        url = files_of(status(http, task_id))[0]["file_url"]
        expires = int(httpx.URL(url).params["expires"])
        assert expires == int(clock.now + 3 * 86400 * 0.01 + 0.999)
        clock.advance(3 * 864 - 1)
        assert httpx.get(url).status_code == 200
        clock.advance(2)
        assert httpx.get(url).status_code == 403


# -- credits ---------------------------------------------------------------------------------------


def test_a_failed_task_is_refunded_and_its_status_says_so() -> None:
    clock = Clock()
    faults = Faults(task_fail=1.0)
    with simulator(clock, latency=EXACT, credits=450, faults=faults) as (sim, http):  # 200 credits a job
        ids = [submit(http, body(f"p{i}")).json()["data"]["task_id"] for i in range(2)]
        assert submit(http, body("p2")).status_code == 402  # 50 left while both render
        assert sim.stats()["credits"] == {"balance": 450, "spent": 400, "refunded": 0, "left": 50}
        clock.advance(41)
        assert [status(http, i)["credits_return"] for i in ids] == [200, 200]
        assert sim.stats()["credits"] == {"balance": 450, "spent": 400, "refunded": 400, "left": 450}
        assert submit(http, body("p2")).status_code == 200


def test_a_partial_refund_and_one_the_status_does_not_show() -> None:
    clock = Clock()
    answers = Answers(refund=0.25, refund_shown=0.0)
    with simulator(clock, latency=EXACT, credits=1000, faults=Faults(task_fail=1.0), answers=answers) as (sim, http):
        task_id = submit(http, body("p")).json()["data"]["task_id"]
        clock.advance(41)
        data = status(http, task_id)
        assert data["status"] == "failed" and "credits_return" not in data and data["error_message"]
        assert sim.stats()["credits"] == {"balance": 1000, "spent": 200, "refunded": 50, "left": 850}


# -- the queue -------------------------------------------------------------------------------------


def test_a_heavy_tailed_queue_has_the_median_and_p95_asked_for() -> None:
    latency = Latency(queue_median=10, queue_p95=180)
    figures = latency.figures(render_time(load_catalog(), "seedance-2", "720p", 5))
    waits = sorted(queue_seconds(latency, figures, draw(7, "queue", f"task-{i}")) for i in range(20_000))
    assert statistics.median(waits) == pytest.approx(10, rel=0.05)
    assert waits[int(0.95 * len(waits))] == pytest.approx(180, rel=0.08)
    assert queue_seconds(Latency(queue_seconds=3), figures, 0.99) == figures.queue_seconds


def test_the_heavy_queue_is_seeded_per_task_and_scaled() -> None:
    config = SimulatorConfig(time_scale=0.01, latency=Latency(queue_median=10, queue_p95=180))
    first, again = (make_task(config, BODY, "k", 0, START, 200) for _ in range(2))
    assert first == again
    figures = config.latency.figures(render_time(load_catalog(), "seedance-2", "720p", 5))
    expected = queue_seconds(config.latency, figures, draw(0, "queue", first.task_id)) * 0.01
    assert first.starts_at - START == pytest.approx(expected, abs=1e-6)  # epoch floats: ~0.2 us apart


@pytest.mark.parametrize(("latency", "message"), [
    ({"queue_median": 10}, "latency: set queue_median and queue_p95 together"),
    ({"queue_median": 100, "queue_p95": 10}, "latency: queue_median must be above 0 and at most queue_p95"),
    ({"queue_median": 0, "queue_p95": 10}, "latency: queue_median must be above 0"),
])
def test_a_bad_heavy_queue_is_a_usage_error(latency: dict[str, float], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        Latency(**latency)


def test_the_tasks_endpoint_lists_every_task_life() -> None:
    clock = Clock()
    with simulator(clock, latency=EXACT, faults=Faults(task_stuck=0)) as (sim, http):
        task_id = submit(http, body("p")).json()["data"]["task_id"]
        listed = httpx.get(f"{sim.base_url}/_sim/tasks").json()
        assert sim.tasks() == listed
    assert listed["clock"] == START and listed["time_scale"] == 1.0
    assert listed["tasks"] == {task_id: {"created": START, "starts_at": START + 10, "ends_at": START + 40,
                                         "fate": "finished", "status": "not_started"}}


# -- callbacks -------------------------------------------------------------------------------------


class Receiver:
    """Records each delivery's headers and exact body bytes."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.changed = threading.Condition()
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> JSONResponse:
        raw = await request.body()
        with self.changed:
            self.deliveries.append((dict(request.headers), raw))
            self.changed.notify_all()
        return JSONResponse({"ok": True})

    def wait(self, count: int, timeout: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.deliveries) >= count, timeout), self.deliveries
            return list(self.deliveries)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    hooks = Receiver()
    with serve_in_thread(hooks.app) as url:
        yield hooks, f"{url}/hook"


def verify(secret: str, headers: dict[str, str], raw: bytes) -> bool:
    """The Standard Webhooks check, written from the spec (not the simulator's code)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + raw
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(part.removeprefix("v1,"), expected)
               for part in headers["webhook-signature"].split() if part.startswith("v1,"))


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_signed_deliveries_carry_standard_webhooks_headers(receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    webhooks = WebhookFaults(secret=SECRET, duplicate=1.0)
    before = int(time.time())
    with simulator(time_scale=0.0005, webhooks=webhooks, faults=Faults(task_stuck=0)) as (sim, http):
        task_id = submit(http, {**body("p"), "callback_url": url}).json()["data"]["task_id"]
        (first, raw), (second, raw2) = hooks.wait(2)
        assert sim.stats()["config"]["webhooks"]["secret"] == "***"
        assert SECRET not in json.dumps(sim.stats())
    assert verify(SECRET, first, raw) and verify(SECRET, second, raw2)
    assert json.loads(raw)["data"]["task_id"] == task_id and first["content-type"] == "application/json"
    assert first["webhook-id"].startswith("msg_") and first["webhook-id"] == second["webhook-id"]  # one event
    assert before <= int(first["webhook-timestamp"]) <= int(time.time())
    assert not verify("whsec_" + base64.b64encode(b"another key, sixteen+").decode(), first, raw)


def test_forged_and_stale_signatures_when_asked_for(receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    webhooks = WebhookFaults(secret=SECRET, bad_signature=1.0, timestamp_offset=-600)
    with simulator(time_scale=0.0005, webhooks=webhooks, faults=Faults(task_stuck=0)) as (_, http):
        submit(http, {**body("p"), "callback_url": url})
        [(headers, raw)] = hooks.wait(1)
    assert not verify(SECRET, headers, raw)
    assert int(headers["webhook-timestamp"]) <= time.time() - 590


def test_unsigned_by_default(receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    with simulator(time_scale=0.0005, faults=Faults(task_stuck=0)) as (_, http):
        submit(http, {**body("p"), "callback_url": url})
        [(headers, _)] = hooks.wait(1)
    assert not {"webhook-id", "webhook-timestamp", "webhook-signature"} & set(headers)


def test_drop_all_loses_every_callback(receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    with simulator(time_scale=0.0005, webhooks=WebhookFaults(drop=1.0), faults=Faults(task_stuck=0)) as (sim, http):
        ids = [submit(http, {**body(f"p{i}"), "callback_url": url}).json()["data"]["task_id"] for i in range(5)]
        wait_until(lambda: all(status(http, i)["status"] in ("finished", "completed") for i in ids))
        stats = sim.stats()["webhooks"]
    assert hooks.deliveries == [] and stats["dropped"] == 5 and stats["sent"] == 0


@pytest.mark.parametrize(("secret", "message"), [
    ("sk-not-a-webhook-secret", "the webhook secret must start with whsec_ (a Standard Webhooks secret)"),
    ("whsec_not base64!", "the webhook secret: the part after whsec_ is not base64"),
    ("whsec_" + base64.b64encode(b"short").decode(), "the webhook secret's key is 5 bytes; use at least 16"),
])
def test_a_bad_webhook_secret_is_refused_without_quoting_it(secret: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        WebhookFaults(secret=secret)
    assert caught.value.message == message and secret not in str(caught.value)


# -- the command line ------------------------------------------------------------------------------


def test_answer_knobs_parse_yes_no_and_numbers() -> None:
    assert parse_knobs(["completed=0.5", "progress=no"], Answers, flag="--answer") == {"completed": 0.5,
                                                                                        "progress": False}
    with pytest.raises(UsageError, match="--answer 'progress=maybe': 'maybe' is not yes or no"):
        parse_knobs(["progress=maybe"], Answers, flag="--answer")
    with pytest.raises(UsageError, match="--webhook 'secret=x': expected NAME=VALUE"):
        parse_knobs(["secret=x"], WebhookFaults, flag="--webhook")


def run_simulate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "seedance_batch", "simulate", *args],
                          capture_output=True, text=True, timeout=30, env=env)


@pytest.mark.parametrize(("args", "message"), [
    (["--queue-median", "10"], "error: latency: set queue_median and queue_p95 together"),
    (["--rate-window", "0"], "error: rate_window must be above 0 seconds, got 0.0"),
    (["--answer", "thumbnail=3"], "error: answers.thumbnail must be a probability from 0 to 1, got 3.0"),
])
def test_the_simulate_command_refuses_bad_realism_flags_in_one_line(args: list[str], message: str) -> None:
    result = run_simulate(*args)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0].startswith(message) and len(result.stderr.splitlines()) <= 2


def test_the_simulate_command_reads_the_webhook_secret_from_the_environment_only_quietly() -> None:
    import os

    env = {**os.environ, "SIMULATOR_WEBHOOK_SECRET": "whsec_bad secret"}
    result = run_simulate(env=env)
    assert result.returncode == 2 and "bad secret" not in result.stderr
    assert result.stderr.startswith("error: the webhook secret: the part after whsec_ is not base64")
