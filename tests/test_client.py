"""The client's outcome mapping (run/outcomes.py): every HTTP status and transport failure
has a type; and the one reader of a task's payload (run/answers.py), for status answers
and webhook events alike.

Pure mapping is tested directly and through httpx.MockTransport; end-to-end behaviour
against the real simulator lives in tests/test_engine*.py.
"""

from __future__ import annotations

import inspect
import json

import anyio
import httpx
import pytest

from seedance_batch.errors import (
    AmbiguousSubmit,
    ApiError,
    AuthenticationError,
    InsufficientCredits,
    InvalidRequest,
    RateLimited,
    TransientError,
    UsageError,
)
from seedance_batch.run.answers import BadEvent, task_status, webhook_event
from seedance_batch.run.client import ApiClient
from seedance_batch.run.outcomes import error_for_exception, error_for_response, parse_retry_after

KEY = "sk-canary-0123456789"
BODY = {"model": "seedance-2", "input": {"prompt": "p", "duration": 5, "resolution": "720p"}}


def run(coro_fn, *args):
    return anyio.run(coro_fn, *args)


def client_for(handler) -> ApiClient:
    return ApiClient("http://api.test", KEY, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("op", ["submit", "status"])
def test_every_http_status_maps_to_an_api_error_or_success(op: str) -> None:
    ok = json.dumps({"code": 200, "data": {"task_id": "t", "status": "not_started"}}).encode()
    for status in range(100, 600):
        error = error_for_response(op, status, {}, ok)
        if 200 <= status < 300:
            assert error is None, status
        else:
            assert isinstance(error, ApiError), status
            assert not isinstance(error, AmbiguousSubmit), status  # the server answered


@pytest.mark.parametrize(("status", "kind"), [
    (400, InvalidRequest), (401, AuthenticationError), (402, InsufficientCredits), (403, AuthenticationError),
    (404, InvalidRequest), (408, TransientError), (429, RateLimited), (500, TransientError),
    (502, TransientError), (503, TransientError), (302, TransientError),
])
def test_documented_statuses(status: int, kind: type) -> None:
    assert type(error_for_response("submit", status, {}, b"{}")) is kind


def test_every_httpx_exception_is_mapped() -> None:
    classes = [c for c in vars(httpx).values()
               if inspect.isclass(c) and issubclass(c, httpx.HTTPError) and c is not httpx.HTTPStatusError]
    assert len(classes) > 15
    request = httpx.Request("POST", "http://api.test/x")
    for cls in classes:
        exc = cls("boom", request=request) if cls is not httpx.HTTPError else cls("boom")
        for op in ("submit", "status"):
            assert isinstance(error_for_exception(op, exc), ApiError), (cls, op)


@pytest.mark.parametrize(("exc", "submit_kind"), [
    (httpx.ConnectError, TransientError), (httpx.ConnectTimeout, TransientError),
    (httpx.PoolTimeout, TransientError), (httpx.ReadTimeout, AmbiguousSubmit),
    (httpx.ReadError, AmbiguousSubmit), (httpx.RemoteProtocolError, AmbiguousSubmit),
    (httpx.WriteTimeout, AmbiguousSubmit),
])
def test_sent_but_unanswered_submit_is_ambiguous_status_is_transient(exc: type, submit_kind: type) -> None:
    error = exc("x", request=httpx.Request("GET", "http://a"))
    assert type(error_for_exception("submit", error)) is submit_kind
    assert type(error_for_exception("status", error)) is TransientError


def test_code_inside_a_2xx() -> None:
    assert isinstance(error_for_response("status", 200, {}, b'{"code": 500, "msg": "busy"}'), TransientError)
    assert isinstance(error_for_response("submit", 200, {}, b'{"code": 402}'), InsufficientCredits)
    assert error_for_response("submit", 200, {}, b'{"code": 0, "data": {}}') is None
    assert isinstance(error_for_response("submit", 200, {}, b"<html>"), AmbiguousSubmit)
    assert isinstance(error_for_response("status", 200, {}, b"<html>"), TransientError)


def test_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    error = error_for_response("submit", 429, {"retry-after": "7"}, b"{}")
    assert isinstance(error, RateLimited) and error.retry_after == 7.0


def test_submit_and_status_speak_the_contract() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(200, json={"code": 200, "data": {"task_id": "task-1", "status": "not_started"}})
        return httpx.Response(200, json={"code": 200, "data": {
            "task_id": "task-1", "status": "finished",
            "output": {"files": [{"file_url": "http://f/v.mp4", "file_type": "video"}]}, "error_message": None}})

    async def go():
        async with client_for(handler) as client:
            return await client.submit(BODY), await client.status("task-1")

    answer, status = run(go)
    assert (answer.task_id, answer.status) == ("task-1", "not_started")
    assert status.finished and status.file_urls == ("http://f/v.mp4",)
    assert seen[0].url.path == "/api/generate/submit" and json.loads(seen[0].content) == BODY
    assert seen[1].url.path == "/api/generate/status/task-1"
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in seen)


def test_unknown_status_is_still_running_and_flat_shape_accepted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"task_id": "t", "status": "queued_for_gpu"})

    async def go():
        async with client_for(handler) as client:
            return await client.status("t")

    status = run(go)
    assert status.status == "queued_for_gpu" and not status.terminal


def test_the_key_is_scrubbed_from_echoed_error_text() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"type": "authentication_error",
                                                   "message": f"bad key {KEY}"}})

    async def go():
        async with client_for(handler) as client:
            await client.submit(BODY)

    with pytest.raises(AuthenticationError) as caught:
        run(go)
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    assert str(caught.value) == "submit: HTTP 401: bad key ***; check APIDOT_API_KEY (environment or .env)"


def test_a_missing_key_or_bad_base_url_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="set APIDOT_API_KEY"):
        ApiClient("http://api.test", "")
    with pytest.raises(UsageError, match="must be an http"):
        ApiClient("api.test", KEY)


@pytest.mark.parametrize("url", ["http://[::1:80", "http://h:99999", "http://h:abc", "http://:80", "ftp://h"])
def test_a_base_url_no_request_could_go_to_is_refused_before_the_run(url: str) -> None:
    from seedance_batch.run.client import check_credentials

    with pytest.raises(UsageError) as caught:
        check_credentials(url, KEY)
    assert caught.value.format() == (f"APIDOT_BASE_URL must be an http(s) URL, got {url!r}; "
                                     "e.g. https://api.apidot.ai or http://127.0.0.1:8750")


@pytest.mark.parametrize("key", ["sk-caf\u00e9-canary", "sk-canary\n", "sk-\x00canary"])
def test_a_key_no_header_could_carry_is_refused_without_showing_it(key: str) -> None:
    # it used to be found at the first submit and leave the job 'unknown' (counted as spent)
    with pytest.raises(UsageError) as caught:
        ApiClient("http://api.test", key)
    assert "canary" not in caught.value.format()
    assert caught.value.message.startswith("APIDOT_API_KEY has characters an HTTP header cannot carry")


# --- one reader of a task's payload: status answers and webhook events ---------------------------

NESTED = {"data": {"task_id": "task-1", "status": "finished",
                   "output": {"files": [{"file_url": "https://f/a.jpg", "file_type": "image"},
                                        {"file_url": "https://f/v.mp4", "file_type": "video"}]}}}


@pytest.mark.parametrize("body", [NESTED, NESTED["data"]], ids=["nested", "flat"])
def test_a_status_answer_and_a_webhook_event_are_read_alike(body: dict) -> None:
    status = task_status("task-1", body.get("data", body))
    event = webhook_event(body)
    assert (status.task_id, status.status, status.file_urls) == ("task-1", "finished", ("https://f/v.mp4",))
    assert (event.task_id, event.status) == ("task-1", "finished")
    assert event.file_urls == ("https://f/a.jpg", "https://f/v.mp4")  # counted only: an event is a hint


def test_status_answers_are_tolerant_keep_only_usable_urls_and_scrub_the_key() -> None:
    data = {"status": f"running {KEY}", "files": ["https://f/plain.mp4", f"https://f/v.mp4?k={KEY}", 7],
            "error_message": {"nested": True}}
    status = task_status("asked", data, (KEY,))
    assert status.task_id == "asked" and KEY not in status.status and status.status.startswith("running ")
    assert status.file_urls == ("https://f/plain.mp4",)  # the one carrying the key is dropped
    assert status.error_message == "(a JSON object, not text)"
    assert task_status("asked", {"files": "not a list"}) == task_status("asked", {})
    assert task_status("asked", {}).status == "unknown"


@pytest.mark.parametrize(("body", "message"), [
    ([], "the body must be a JSON object"),
    ({"data": {"status": "finished"}}, 'task_id is missing (expected {"data": {"task_id", "status", "files"}} '
                                       "or the same flat)"),
    ({"task_id": "t"}, "status is missing"),
    ({"task_id": "t", "status": "finished", "files": {"a": 1}}, "files must be a list"),
    ({"task_id": "t", "status": "finished", "files": [{"file_type": "video"}]},
     "each file must be a URL or an object with file_url"),
])
def test_a_webhook_body_that_is_no_event_says_what_is_wrong(body: object, message: str) -> None:
    with pytest.raises(BadEvent) as caught:
        webhook_event(body)
    assert str(caught.value) == message


# --- the answers as the service really sends them ---------------------------------------------

THUMB = {"file_url": "https://f/thumb.png", "file_type": "image"}
VIDEO = {"file_url": "https://f/v.mp4", "file_type": "video"}


@pytest.mark.parametrize("data", [
    {"status": "finished", "output": {"files": [THUMB, VIDEO]}},
    {"status": "finished", "files": [THUMB, VIDEO]},
    {"status": "finished", "output": {"files": [THUMB]}, "files": [VIDEO]},  # one at each place
    {"status": "finished", "output": {"files": [VIDEO]}, "files": [VIDEO]},  # the same at both
], ids=["output.files", "data.files", "split", "both"])
def test_the_video_is_the_entry_typed_video_wherever_the_files_are(data: dict) -> None:
    assert task_status("t", data).file_urls == ("https://f/v.mp4",)


def test_a_thumbnail_alone_is_no_video() -> None:
    assert task_status("t", {"status": "finished", "files": [THUMB]}).file_urls == ()


@pytest.mark.parametrize(("word", "normal", "finished"), [
    ("finished", "finished", True), ("completed", "finished", True), ("failed", "failed", False),
    ("processing", "processing", False), ("not_started", "not_started", False), ("queued_at_supplier_b", None, False),
])
def test_status_words(word: str, normal: str | None, finished: bool) -> None:
    status = task_status("t", {"status": word})
    assert status.status == (normal or word) and status.finished is finished and status.word == word
    assert status.alias == ("completed" if word == "completed" else None)
    assert status.terminal is (word in ("finished", "completed", "failed"))


@pytest.mark.parametrize(("value", "read"), [
    (0, 0), (37, 37), (100, 100), (55.0, 55), (101, None), (-1, None), (12.5, None), ("50", None), (True, None),
    (None, None),
])
def test_progress_is_read_when_it_is_a_percentage(value: object, read: int | None) -> None:
    assert task_status("t", {"status": "running", "progress": value}).progress == read


@pytest.mark.parametrize(("value", "read"), [(200, 200), (0, 0), (56.0, 56), (-5, None), ("200", None),
                                             (False, None), (2**64, None)])
def test_credits_return_is_read_when_it_is_a_count(value: object, read: int | None) -> None:
    assert task_status("t", {"status": "failed", "credits_return": value}).refund_credits == read


def test_the_client_reads_completed_as_finished_and_logs_the_word_once(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        task_id = request.url.path.rsplit("/", 1)[1]
        return httpx.Response(200, json={"code": 200, "data": {"task_id": task_id, "status": "completed",
                                                               "files": [THUMB, VIDEO]}})

    async def go() -> list:
        async with client_for(handler) as client:
            return [await client.status(f"task-{i}") for i in range(3)]

    with caplog.at_level("INFO", logger="seedance_batch.run.client"):
        answers = run(go)
    assert [(a.status, a.file_urls) for a in answers] == [("finished", ("https://f/v.mp4",))] * 3
    assert [r.getMessage() for r in caplog.records] == [
        "the service says 'completed' for 'finished'; read as finished (logged once per run)"]


def test_published_error_bodies_give_their_message() -> None:
    body = json.dumps({"code": 400, "error": {"message": "image_urls and reference_*_urls cannot be used together",
                                              "type": "invalid_request_error"}}).encode()
    error = error_for_response("submit", 400, {}, body)
    assert isinstance(error, InvalidRequest)
    assert error.message == "submit: HTTP 400: image_urls and reference_*_urls cannot be used together"
    top = json.dumps({"code": 429, "message": "slow down", "error": {"type": "rate_limited"}}).encode()
    limited = error_for_response("submit", 429, {}, top)
    assert isinstance(limited, RateLimited) and limited.retry_after is None
    assert limited.message == "submit: HTTP 429: slow down"  # the top-level message before the bare type
