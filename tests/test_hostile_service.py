"""A malicious or broken API (issue 8): its answers never leak the key, crash a run, or grow without bound.

Each test scripts the hostile answer on a stand-in API of its own (tests/hostile_api.py,
real HTTP over loopback) and asserts the documented outcome: the job's state, the
exact text stored, what reached the server. The last test runs the real CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from cli_support import run_cli
from engine_support import make_jobs, plan_for, run_engine, settings
from hostile_api import HostileApi, answer, failed, finished, gzip_bomb, gzipped, nested, raw, streamed
from seedance_batch.errors import AmbiguousSubmit, TransientError
from seedance_batch.ledger import JobState, Ledger
from seedance_batch.run.client import MAX_ANSWER_BYTES, ApiClient

# Not shaped like a credential (no "sk-", no "Bearer"): only scrubbing by the key's value catches it.
KEY = "canary-7Yq2Lw9Zp4Xc"
KEY_START = KEY[:5]  # what a cut through the key would leave behind
BODY = {"model": "seedance-2-fast", "input": {"prompt": "p", "duration": 4, "resolution": "480p"}}
SHORT = httpx.Timeout(connect=0.3, read=0.5, write=0.3, pool=0.2)  # an exchange deadline of 1.3 s


def run_jobs(api: HostileApi, ledger: Ledger, tmp_path: Path, count: int = 1, **overrides):
    jobs = make_jobs(count)
    return run_engine(plan_for(jobs, ledger), api.base_url, ledger, settings(tmp_path, **overrides), key=KEY)


def ledger_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("ledger.sqlite*"))


def on_status(*answers: Response):
    """A status handler giving these answers in turn, then the last one forever."""
    given = []

    async def handler(request: Request) -> Response:
        given.append(request)
        return answers[min(len(given), len(answers)) - 1]

    return handler


def in_client(api: HostileApi, fn):
    async def go():
        async with ApiClient(api.base_url, KEY, timeout=SHORT) as client:
            return await fn(client)

    return anyio.run(go)


# --- the key in the service's own text ------------------------------------------------------


@pytest.mark.parametrize("offset", [0, 296, 497])  # at the start; across the old 300 cut; across the 500 bound
@pytest.mark.parametrize("echo", ["{key}", "Bearer {key}"])
def test_a_failed_tasks_message_quoting_the_key_is_scrubbed_before_it_is_stored(
        offset: int, echo: str, tmp_path: Path, ledger: Ledger) -> None:
    quoted = echo.format(key=KEY)
    message = "x" * offset + quoted + " while rendering"
    api = HostileApi(status=on_status(answer(failed("task-1", message))))
    with api.serve():
        result = run_jobs(api, ledger, tmp_path)
    [rec] = result.records
    assert rec.state is JobState.FAILED and rec.task_id == "task-1"
    expected = "x" * offset + quoted.replace(KEY, "***") + " while rendering"
    assert rec.error_message == (expected if len(expected) <= 500 else
                                 f"{expected[:500]}… ({len(expected) - 500} more characters)")
    assert KEY_START.encode() not in ledger_bytes(tmp_path)


def test_an_error_body_quoting_the_key_across_the_old_cut_leaks_none_of_it(tmp_path: Path, ledger: Ledger) -> None:
    # The old client cut the message at 300 characters *then* scrubbed: "canar" survived.
    async def submit(request: Request) -> Response:
        return answer({"code": 400, "error": {"message": "x" * 296 + KEY, "type": "invalid_request_error"}}, 400)

    api = HostileApi(submit=submit)
    with api.serve():
        result = run_jobs(api, ledger, tmp_path)
    [rec] = result.records
    assert rec.state is JobState.FAILED
    assert rec.error_message == "submit: HTTP 400: " + "x" * 296 + "***"
    assert KEY_START.encode() not in ledger_bytes(tmp_path)


def test_status_words_are_scrubbed_and_bounded(tmp_path: Path, ledger: Ledger) -> None:
    word = f"running-{KEY}-" + "y" * 10_000
    api = HostileApi()
    with api.serve():
        api.status = on_status(answer({"code": 200, "data": {"task_id": "task-1", "status": word}}),
                               answer(finished("task-1", f"{api.base_url}/files/video.mp4")))
        result = run_jobs(api, ledger, tmp_path)
    assert result.counts() == {"done": 1}
    [seen] = [e.detail["api_status"] for e in ledger.events("demo") if e.kind == "status"]
    assert seen.startswith("running-***-" + "y" * 52 + "… (") and len(seen) < 100
    assert KEY_START.encode() not in ledger_bytes(tmp_path)


# --- unbounded and malformed answers -----------------------------------------------------------


def test_a_huge_error_message_is_stored_bounded(tmp_path: Path, ledger: Ledger) -> None:
    message = "z" * 900_000  # under the answer cap: read, then bounded
    api = HostileApi(status=on_status(answer(failed("task-1", message))))
    empty = len(ledger_bytes(tmp_path))  # a fresh ledger's own size grows with each migration
    with api.serve():
        result = run_jobs(api, ledger, tmp_path)
    [rec] = result.records
    assert rec.state is JobState.FAILED
    assert rec.error_message.startswith("z" * 500 + "… (") and len(rec.error_message) < 540
    assert len(ledger_bytes(tmp_path)) - empty < 300_000


def test_a_20_mb_answer_is_not_read_the_task_keeps_its_id(tmp_path: Path, ledger: Ledger) -> None:
    # Past the 1 MiB cap the answer is malformed: retried, never stored; at run.timeout the
    # job is timed_out with its task id, and a later run asks again.
    message = "z" * 20_000_000
    api = HostileApi(status=on_status(answer(failed("task-1", message))))
    empty = len(ledger_bytes(tmp_path))  # a fresh ledger's own size grows with each migration
    with api.serve():
        result = run_jobs(api, ledger, tmp_path, timeout=250)  # 1 s of real time
    [rec] = result.records
    assert rec.state is JobState.TIMED_OUT and rec.task_id == "task-1"
    assert rec.error_message == "still unanswered after 250 s; a later run resumes tracking it"
    errors = {e.detail["error"] for e in ledger.events("demo") if e.kind == "status_error"}
    assert errors == {"status: HTTP 200 with a body that cannot be read"}
    assert len(ledger_bytes(tmp_path)) - empty < 300_000


@pytest.mark.parametrize(("where", "status", "outcome"), [
    ("submit", 200, {"unknown": 1}),  # the service said OK and we cannot read the task id: may exist
    ("submit", 500, {"done": 1}),     # a malformed 5xx is a 5xx: retried
    ("status", 200, {"done": 1}),     # a malformed status answer: asked again
])
def test_json_nested_past_the_parser_is_a_malformed_answer(
        where: str, status: int, outcome: dict[str, int], tmp_path: Path, ledger: Ledger) -> None:
    bad = raw(nested(100_000), status, **{"content-type": "application/json"})
    api = HostileApi()
    with api.serve():
        good = answer({"code": 200, "data": {"task_id": "task-1"}}) if where == "submit" else \
            answer(finished("task-1", f"{api.base_url}/files/video.mp4"))
        setattr(api, where, on_status(bad, good))
        result = run_jobs(api, ledger, tmp_path)
    assert result.counts() == outcome
    [rec] = result.records
    if outcome == {"unknown": 1}:
        assert rec.error_message == "submit: the service answered OK with a body that is not a readable JSON object"
        assert rec.task_id is None
    else:
        assert rec.state is JobState.DONE


def test_an_answer_is_read_only_up_to_its_cap() -> None:
    # A valid answer padded to 20 MB: the old client read all of it and used it.
    padded = {"code": 200, "data": {"task_id": "task-1", "status": "running", "pad": "p" * 20_000_000}}

    async def huge(request: Request) -> Response:
        return answer(padded)

    api = HostileApi(submit=huge, status=huge)
    with api.serve():
        with pytest.raises(TransientError) as status_error:
            in_client(api, lambda client: client.status("task-1"))
        with pytest.raises(AmbiguousSubmit) as submit_error:
            in_client(api, lambda client: client.submit(BODY))
    assert status_error.value.message == "status: HTTP 200 with a body that cannot be read"
    assert submit_error.value.message == "submit: the service answered OK with a body that cannot be read"
    assert MAX_ANSWER_BYTES == 1 << 20


def test_a_gzip_bomb_answer_is_cut_at_the_cap() -> None:
    async def bomb(request: Request) -> Response:  # 64 KB on the wire, 64 MiB inflated (the old client held it all)
        bomb = gzip_bomb(b'{"code": 200, "data": {"task_id": "task-1", "status": "running", "pad": "',
                         total_mib=64, fill=b" ", tail=b'"}}')
        return streamed(bomb, **{"content-encoding": "gzip", "content-type": "application/json"})

    async def small(request: Request) -> Response:
        body = json.dumps({"code": 200, "data": {"task_id": "task-1", "status": "running"}}).encode()
        return raw(gzipped(body), **{"content-encoding": "gzip", "content-type": "application/json"})

    api = HostileApi(status=bomb)
    with api.serve():
        with pytest.raises(TransientError, match="a body that cannot be read"):
            in_client(api, lambda client: client.status("task-1"))
        api.status = small  # an honest gzip-encoded answer is read
        assert in_client(api, lambda client: client.status("task-1")).status == "running"


def test_an_answer_that_drips_is_cut_at_the_exchange_deadline() -> None:
    # One byte every 0.3 s never trips a per-read timeout; the old client waited 6 s, then used it.
    body = json.dumps({"code": 200, "data": {"task_id": "task-1", "status": "running"}}).encode()

    async def slow(request: Request) -> Response:
        async def chunks():
            for byte in body[:20]:
                yield bytes([byte])
                await anyio.sleep(0.3)
            yield body[20:]

        return streamed(chunks(), **{"content-type": "application/json"})

    api = HostileApi(submit=slow, status=slow)
    with api.serve():
        started = time.monotonic()
        with pytest.raises(TransientError) as status_error:
            in_client(api, lambda client: client.status("task-1"))
        with pytest.raises(AmbiguousSubmit) as submit_error:
            in_client(api, lambda client: client.submit(BODY))
        elapsed = time.monotonic() - started
    assert status_error.value.message == "status: no whole answer within 1.3 s"
    assert submit_error.value.message == "submit: sent, but no whole answer within 1.3 s; the task may exist"
    assert elapsed < 4.5


# --- task ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(("task_id", "stored"), [
    ("task-\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07",
     "submit: the service said OK with an unusable task id (control, invisible or blank characters): "
     "task-\\x1b]8;;http://evil.example/\\x07click\\x1b]8;;\\x07; the task may exist"),
    ("t" * 300, "submit: the service said OK with an unusable task id (300 characters, at most 256): "
                + "t" * 80 + "… (220 more characters); the task may exist"),
    ("two words", "submit: the service said OK with an unusable task id (control, invisible or blank "
                  "characters): two words; the task may exist"),
    ("..", "submit: the service said OK with an unusable task id (only dots): ..; the task may exist"),
    (f"task-{KEY}", "submit: the service said OK with an unusable task id (it carries the API key): "
                    "task-***; the task may exist"),
    ("x" * 5_000_000, "submit: the service answered OK with a body that cannot be read"),  # past the cap
], ids=["osc-escape", "300-chars", "blank", "dots", "carries-key", "5-MB"])
def test_a_task_id_that_is_not_a_bounded_printable_token_is_refused_the_job_unknown(
        task_id: str, stored: str, tmp_path: Path, ledger: Ledger) -> None:
    async def submit(request: Request) -> Response:
        return answer({"code": 200, "data": {"task_id": task_id, "status": "not_started"}})

    api = HostileApi(submit=submit)
    with api.serve():
        result = run_jobs(api, ledger, tmp_path)
    [rec] = result.records
    assert rec.state is JobState.UNKNOWN and rec.task_id is None  # it may exist: counted, never resubmitted
    assert rec.error_message == stored
    assert result.exit_code == 1
    assert [s.method for s in api.seen] == ["POST"]  # never asked about
    assert KEY_START.encode() not in ledger_bytes(tmp_path)


def test_a_path_traversal_task_id_is_sent_as_one_encoded_segment(tmp_path: Path, ledger: Ledger) -> None:
    task_id = "../../../admin/delete?x=1#"

    async def submit(request: Request) -> Response:
        return answer({"code": 200, "data": {"task_id": task_id}})

    api = HostileApi(submit=submit)
    with api.serve():
        result = run_jobs(api, ledger, tmp_path)
    assert result.counts() == {"done": 1}
    assert result.records[0].task_id == task_id
    assert api.paths() == [b"/api/generate/submit", b"/api/generate/status/..%2F..%2F..%2Fadmin%2Fdelete%3Fx%3D1%23",
                           b"/files/video.mp4"]
    # the key went only to the API's own two paths
    assert [s.authorization is not None for s in api.seen] == [True, True, False]


def test_a_bad_task_id_left_in_the_ledger_by_an_older_version_does_not_stop_later_runs(
        tmp_path: Path, ledger: Ledger) -> None:
    stuck, paid, new = make_jobs(3)
    api = HostileApi()
    with api.serve():
        for job, task_id in [(stuck, "task-\x1b[2J\x1b]0;pwned\x07"), (paid, "x" * 5000)]:
            ledger.begin_submit(campaign="demo", key=job.key, label=job.label, shot=job.shot, request=job.request,
                                credits=56, cost_usd=Decimal("0.28"), output_path=job.output_path)
            ledger.submitted("demo", job.key, task_id, "not_started")
        ledger.finished("demo", paid.key, f"{api.base_url}/files/video.mp4")  # its URL is known: downloaded
        result = run_engine(plan_for([stuck, paid, new], ledger), api.base_url, ledger, settings(tmp_path), key=KEY)
    states = {r.label: r.state for r in result.records}
    assert states == {stuck.label: JobState.SUBMITTED, paid.label: JobState.DONE, new.label: JobState.DONE}
    [note] = [e for e in ledger.events("demo") if e.kind == "not_tracked"]
    assert note.label == stuck.label
    assert note.detail == {"error": "unusable task id: control, invisible or blank characters"}
    assert sorted(api.paths()) == [b"/api/generate/status/task-1", b"/api/generate/submit",
                                   b"/files/video.mp4", b"/files/video.mp4"]  # neither old id was put into a URL


# --- a price file ----------------------------------------------------------------------------


def test_a_prices_file_nested_past_the_parser_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    (tmp_path / "deeper.json").write_text('{"snapshot_date": "2026-01-01", "credit_usd": 1, "models": '
                                          + "[" * 500 + "]" * 500 + "}")
    for name, why in [("deep.json", "not a usable JSON file: nested too deeply"),
                      ("deeper.json", "nested more than 32 levels deep; not a price file")]:
        done = subprocess.run([sys.executable, "-m", "seedance_batch", "prices", "--prices", name], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert done.stderr == f"{name}: {why}\n"


# --- end to end: the real CLI, the key absent afterwards ---------------------------------------

MANIFEST = """\
version: 1
name: hostile
defaults:
  model: seedance-2-fast
  resolution: 480p
  duration: 4
matrix:
  n: [a, b, c, d, e]
shots:
  - id: s
    prompt: "shot {{ n }}"
run:
  submits_per_minute: 6
  max_attempts: 3
"""


class EchoingApi(HostileApi):
    """Echoes the key it is sent into every text it answers with, one way per job."""

    def __init__(self) -> None:
        super().__init__(submit=self.on_submit, status=self.on_status)
        self.tries: dict[str, int] = {}

    def key(self, request: Request) -> str:
        return request.headers["authorization"].removeprefix("Bearer ")

    async def on_submit(self, request: Request) -> Response:
        prompt = json.loads(await request.body())["input"]["prompt"]
        key, n = self.key(request), prompt.removeprefix("shot ")
        self.tries[n] = self.tries.get(n, 0) + 1
        if n == "b":
            return answer({"code": 400, "error": {"message": "x" * 296 + f"bad input from {key}"}}, 400)
        if n == "c":
            return answer({"code": 200, "data": {"task_id": f"task-{key}"}})
        if n == "e" and self.tries[n] == 1:
            return answer({"code": 503, "msg": f"busy; Authorization: Bearer {key}"})
        return answer({"code": 200, "data": {"task_id": f"task-{n}", "status": f"queued for {key}"}})

    async def on_status(self, request: Request) -> Response:
        task, key = request.path_params["task_id"], self.key(request)
        self.tries[task] = self.tries.get(task, 0) + 1
        if task == "task-a":
            return answer(failed(task, "y" * 295 + f"render failed for Bearer {key}; " + "y" * 160 + key))
        if task == "task-d" and self.tries[task] == 1:
            return answer({"code": 200, "data": {"task_id": task, "status": f"running as {key}"}})
        if task == "task-d":  # its only file URL carries the key: never used, never stored
            return answer(finished(task, f"{self.base_url}/files/{key}/video.mp4"))
        return answer(finished(task, f"{self.base_url}/files/video.mp4"))


def test_the_key_reaches_no_byte_of_output_ledger_or_reports(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(MANIFEST)
    api = EchoingApi()
    with api.serve():
        env = {"APIDOT_BASE_URL": api.base_url, "APIDOT_API_KEY": KEY}
        done = run_cli(tmp_path, "run", "m.yaml", "--time-scale", "0.004", env=env)
        # the pull-request plan job: the key is absent from the environment
        status = run_cli(tmp_path, "status", "m.yaml", "--json", env={"APIDOT_BASE_URL": api.base_url})
        report = run_cli(tmp_path, "report", "m.yaml", env={"APIDOT_BASE_URL": api.base_url})
    assert done.code == 1, done.err
    assert status.code == 0 and report.code == 0, status.err + report.err
    assert "Traceback" not in done.err + status.err + report.err
    view = json.loads(status.out)
    assert view["totals"] == {"failed": 2, "unknown": 1, "finished": 1, "done": 1}
    streams = done.out + done.err + status.out + status.err + report.out + report.err
    files = b"".join(p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file() and p.name != "m.yaml")
    assert (tmp_path / "reports" / "hostile" / "summary.md").exists()
    for leak in (KEY, KEY_START):
        assert leak not in streams
        assert leak.encode() not in files
