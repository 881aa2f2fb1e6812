"""The webhook receiver against strangers (issue 8): its callback URL is public.

Real receivers on loopback over real ledger files; raw sockets where a client must
misbehave at the byte level; a real subprocess where memory, descriptors and stderr
are what is measured. Each test states the hostile input first.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from seedance_batch.ledger import JobState, Ledger, open_ledger
from seedance_batch.webhooks import (
    MAX_BODY_BYTES,
    MAX_CONNECTIONS,
    MAX_EVENTS_PER_TASK,
    ReceiverLimits,
    WebhookEvent,
    run_receiver,
    secret_path_for,
)

REQUEST = {"model": "seedance-2-fast", "input": {"prompt": "p", "duration": 4, "resolution": "480p"}}
# Short deadlines so a test waits a fraction of a second, not the real 10 s.
FAST = ReceiverLimits(head_seconds=0.5, body_seconds=0.5, answer_seconds=0.5)
MB = 1024 * 1024
# The run's callback secret (a fixed one: the child process below uses it too); every request
# posts to it, so the limits are met past the secret-path check (which refuses before reading).
TOKEN = "sk-hook-" + "t" * 43
HOOK = f"/hook/{TOKEN}"
HOOK_BYTES = HOOK.encode()
VERIFY = secret_path_for(TOKEN, "c")
TOO_LARGE = {"ok": False, "error": f"the body is larger than {MAX_BODY_BYTES} bytes"}


def seed(path: Path) -> None:
    """Campaign ``c``: task-1 submitted, task-3 timed out; campaign ``other``: task-2 timed out."""
    with open_ledger(path) as ledger:
        for campaign, key, task in (("c", "k1", "task-1"), ("other", "k2", "task-2"), ("c", "k3", "task-3")):
            ledger.begin_submit(campaign=campaign, key=key, label=f"s/{key}", shot="s", request=REQUEST,
                                credits=56, cost_usd=Decimal("0.28"), output_path=f"{campaign}/{key}.mp4")
            ledger.submitted(campaign, key, task, "not_started")
        ledger.timed_out("other", "k2", "run.timeout passed")
        ledger.timed_out("c", "k3", "run.timeout passed")


def raw_row(path: Path, campaign: str, key: str) -> tuple[object, ...]:
    """The job's row as stored, every column, read with a connection of its own."""
    with sqlite3.connect(path) as db:
        return db.execute("SELECT * FROM jobs WHERE campaign = ? AND key = ?", (campaign, key)).fetchone()


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite"
    seed(path)
    return path


@pytest.fixture
def receiver(ledger_path: Path) -> Iterator[tuple[str, Ledger]]:
    """Campaign ``c``'s receiver with short deadlines, in this process."""
    with open_ledger(ledger_path) as ledger, \
            run_receiver(ledger, campaign="c", limits=FAST, verifiers=VERIFY) as url:
        yield url, ledger


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes (a reset after its answer counts as closed)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {timeout} s; it sent {data[:80]!r}") from None
    return data


def read_head(sock: socket.socket) -> bytes:
    """An answer's status line and headers (the connection may be kept open after it)."""
    sock.settimeout(2)
    data = b""
    while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
        data += chunk
    return data


def answer(data: bytes) -> tuple[int, dict[str, object]]:
    """Status and JSON body of a raw HTTP answer."""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def stream(addr: tuple[str, int], head: bytes, chunk: bytes, total: int, tail: bytes = b"") -> tuple[bytes, float]:
    """Send ``head``, then ``total`` bytes in ``chunk``s from a thread while reading the answer."""
    sock = socket.create_connection(addr)
    sock.sendall(head)

    def send() -> None:
        try:
            for _ in range(total // len(chunk)):
                sock.sendall(chunk)
            sock.sendall(tail)
        except OSError:  # the server stopped reading: what a limit does
            pass

    sender = threading.Thread(target=send, daemon=True)
    started = time.monotonic()
    sender.start()
    try:
        data = read_until_closed(sock, 20)
        return data, time.monotonic() - started
    finally:
        sock.close()
        sender.join(timeout=5)


# -- state: events are hints, and only this campaign's ---------------------------------------------


def test_an_event_for_another_campaigns_task_is_404_and_leaves_its_row_byte_identical(receiver, ledger_path) -> None:
    url, ledger = receiver
    before, events_before = raw_row(ledger_path, "other", "k2"), ledger.events("other")
    # unsigned, for a task id that this ledger holds, but for another campaign's timed-out job
    response = httpx.post(f"{url}{HOOK}", json={"task_id": "task-2", "status": "running"})
    assert (response.status_code, response.json()) == (404, {"ok": False, "error": "unknown task id"})
    assert raw_row(ledger_path, "other", "k2") == before
    assert ledger.events("other") == events_before


def test_a_running_event_for_a_timed_out_job_is_recorded_and_changes_no_state(receiver, ledger_path) -> None:
    url, ledger = receiver
    before = raw_row(ledger_path, "c", "k3")
    # would have moved timed_out back to submitted: a junit failure turned into a skip
    response = httpx.post(f"{url}{HOOK}", json={"data": {"task_id": "task-3", "status": "running"}})
    assert response.status_code == 200
    assert raw_row(ledger_path, "c", "k3") == before
    assert ledger.record("c", "k3").state is JobState.TIMED_OUT
    assert ledger.events("c")[-1].kind == "webhook"
    assert ledger.events("c")[-1].detail == {"status": "running", "files": 0}


def test_a_huge_status_is_stored_cut_and_scrubbed_never_the_body(receiver) -> None:
    url, ledger = receiver
    status = "Bearer sk-live-0123456789abcdef " + "x" * 60_000
    files = [f"http://files.example/{i}.mp4" for i in range(20)]
    for _ in range(3):  # three forged events near the body limit for a known task
        assert httpx.post(f"{url}{HOOK}", json={"task_id": "task-1", "status": status, "files": files}).status_code == 200
    stored = [e.detail for e in ledger.events("c") if e.kind == "webhook"]
    assert len(stored) == 3
    for detail in stored:
        assert set(detail) == {"status", "files"} and detail["files"] == 20
        assert detail["status"].startswith("Bearer *** xxxx") and "sk-live" not in detail["status"]
        assert len(json.dumps(detail)) < 200
    assert ledger.record("c", "k1").api_status == "not_started"


def test_a_flood_of_small_events_for_one_task_stores_and_relays_at_most_its_quota(ledger_path) -> None:
    relayed: list[WebhookEvent] = []
    with open_ledger(ledger_path) as ledger, \
            run_receiver(ledger, campaign="c", limits=FAST, on_event=relayed.append, verifiers=VERIFY) as url, \
            httpx.Client(base_url=url) as http:
        # a forger who knows one task id, sending small valid events as fast as it can
        answers = {http.post(HOOK, json={"task_id": "task-1", "status": f"running {i}"}).status_code
                   for i in range(MAX_EVENTS_PER_TASK + 10)}
        assert answers == {200}
        # the quota is per task: another of ours still gets through
        assert http.post(HOOK, json={"task_id": "task-3", "status": "finished"}).status_code == 200
        stored = [e for e in ledger.events("c") if e.kind == "webhook"]
    assert [e.task_id for e in stored].count("task-1") == MAX_EVENTS_PER_TASK
    assert stored[-1].task_id == "task-3" and stored[-1].detail == {"status": "finished", "files": 0}
    assert [e.task_id for e in relayed] == ["task-1"] * MAX_EVENTS_PER_TASK + ["task-3"]


# -- bodies: bounded, parsed safely ----------------------------------------------------------------


@pytest.mark.parametrize("body", [b"[" * 50_000, b'{"task_id": "task-1", "status": "finished", "files": ' + b"[" * 50_000],
                         ids=["brackets", "nested-files"])
def test_a_deeply_nested_body_is_400_not_a_500(receiver, body: bytes) -> None:
    # (and prints no traceback: test_garbage_of_every_kind_prints_nothing_on_the_runs_stderr)
    url, _ = receiver
    response = httpx.post(f"{url}{HOOK}", content=body)
    assert (response.status_code, response.json()) == (
        400, {"ok": False, "error": "the body nests too deeply to be an event"})


def test_a_declared_300_mb_body_is_413_before_any_of_it_is_read(receiver) -> None:
    url, _ = receiver
    sock = socket.create_connection(address(url))
    with sock:
        # only the head: a receiver that waited for the body would never answer
        sock.sendall(b"POST " + HOOK_BYTES + b" HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\n\r\n" % (300 * MB))
        assert answer(read_until_closed(sock, 2)) == (413, TOO_LARGE)


def test_a_body_slower_than_the_limit_is_408_and_closed(receiver) -> None:
    url, _ = receiver
    sock = socket.create_connection(address(url))
    with sock:
        sock.sendall(b"POST " + HOOK_BYTES + b" HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{\"task_id\": ")
        started = time.monotonic()
        data = read_until_closed(sock, 3)  # the other 988 bytes never come
    assert answer(data) == (408, {"ok": False, "error": "the body did not arrive within 0.5 s"})
    assert 0.4 < time.monotonic() - started < 2


# -- connections: deadlines for the head, quiet on garbage ----------------------------------------


def test_slow_request_heads_are_closed_at_the_deadline_while_a_real_sender_is_served(receiver) -> None:
    url, _ = receiver
    addr = address(url)
    silent = [socket.create_connection(addr) for _ in range(10)]
    trickling = [socket.create_connection(addr) for _ in range(10)]
    started = time.monotonic()
    try:
        for sock in silent:
            sock.sendall(b"POST " + HOOK_BYTES + b" HT")  # half a request line, then nothing
        # while they hang, a real event gets through
        response = httpx.post(f"{url}{HOOK}", json={"task_id": "task-1", "status": "finished"}, timeout=2)
        assert response.status_code == 200
        # a byte every 0.1 s does not buy time: the head has a deadline, not an idle timer
        for byte in b"POST " + HOOK_BYTES + b" HTTP/1.1\r\nhost: x\r\nx-pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":
            try:
                for sock in trickling:
                    sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if time.monotonic() - started > 3:
                raise AssertionError("the trickling connections were kept open for 3 s")
            time.sleep(0.1)  # pacing the trickle, not waiting for a race
        for sock in silent + trickling:
            assert read_until_closed(sock, 2) == b""
        assert time.monotonic() - started < 2.5
    finally:
        for sock in silent + trickling:
            sock.close()


def test_at_the_cap_a_real_sender_displaces_the_connection_longest_waiting_for_its_body(ledger_path) -> None:
    limits = ReceiverLimits(max_connections=4, head_seconds=5, body_seconds=5, answer_seconds=1)
    with open_ledger(ledger_path) as ledger, \
            run_receiver(ledger, campaign="c", limits=limits, verifiers=VERIFY) as url:
        addr = address(url)
        slow = []
        try:
            for _ in range(4):  # the cap, each sending its head and then never its body
                sock = socket.create_connection(addr)
                sock.sendall(b"POST " + HOOK_BYTES + b" HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 99\r\n\r\n")
                assert read_head(sock) == b"HTTP/1.1 100 Continue\r\n\r\n"  # the body is being waited for
                slow.append(sock)
            response = httpx.post(f"{url}{HOOK}", json={"task_id": "task-1", "status": "finished"}, timeout=2)
            assert response.status_code == 200
            assert read_until_closed(slow[0], 1) == b""  # the oldest made room
        finally:
            for sock in slow:
                sock.close()


def test_at_the_cap_with_every_connection_being_answered_a_new_one_is_503_and_closed(ledger_path) -> None:
    entered, release = threading.Event(), threading.Event()

    def hold(event: WebhookEvent) -> None:  # the engine, slow to take the event
        entered.set()
        release.wait(5)

    limits = ReceiverLimits(max_connections=1, head_seconds=5, body_seconds=5, answer_seconds=5)
    with open_ledger(ledger_path) as ledger, \
            run_receiver(ledger, campaign="c", limits=limits, on_event=hold, verifiers=VERIFY) as url:
        held: list[httpx.Response] = []
        first = threading.Thread(target=lambda: held.append(
            httpx.post(f"{url}{HOOK}", json={"task_id": "task-1", "status": "finished"}, timeout=5)))
        first.start()
        try:
            assert entered.wait(5)
            with socket.create_connection(address(url)) as sock:
                assert read_until_closed(sock, 2) == (b"HTTP/1.1 503 Service Unavailable\r\n"
                                                      b"content-length: 0\r\nconnection: close\r\n\r\n")
        finally:
            release.set()
            first.join(5)
        assert held[0].status_code == 200  # the one being answered was not cut off


# -- a real process: memory, descriptors, stderr ---------------------------------------------------

# The receiver as a run serves it, in a process of its own with few descriptors (so a
# flood that leaks them shows) and the head and body deadlines given: prints its URL,
# then answers "rss" (max RSS, KiB) and "fds" (open descriptors) on stdin; exits on EOF.
CHILD = """
import os, resource, sys
from seedance_batch.ledger import open_ledger
from seedance_batch.webhooks import ReceiverLimits, run_receiver, secret_path_for
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
limits = ReceiverLimits(head_seconds=float(sys.argv[2]), body_seconds=float(sys.argv[2]), answer_seconds=1.0)
with open_ledger(sys.argv[1]) as ledger, \\
        run_receiver(ledger, campaign="c", limits=limits, verifiers=secret_path_for(sys.argv[3], "c")) as url:
    print(url, flush=True)
    for line in sys.stdin:
        if line.strip() == "rss":
            print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
        elif line.strip() == "fds":
            print(len(os.listdir("/proc/self/fd")), flush=True)
"""


@pytest.fixture
def child(ledger_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    deadline = getattr(request, "param", 1.0)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ledger_path), str(deadline), TOKEN], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), proc.stderr.read()
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def ask(proc: subprocess.Popen[str], what: str) -> int:
    proc.stdin.write(f"{what}\n")
    proc.stdin.flush()
    return int(proc.stdout.readline())


def finish(proc: subprocess.Popen[str]) -> str:
    """Stop the child; its stderr."""
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    return err


def test_a_300_mb_stream_is_refused_at_the_limit_in_bounded_memory_and_silence(child) -> None:
    url, proc = child
    addr = address(url)
    rss_before = ask(proc, "rss")
    declared = b"POST " + HOOK_BYTES + b" HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % (300 * MB)
    chunked = b"POST " + HOOK_BYTES + b" HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
    piece = b"a" * MB
    for head, chunk, tail in ((declared, piece, b""), (chunked, b"%x\r\n%s\r\n" % (len(piece), piece), b"0\r\n\r\n")):
        data, seconds = stream(addr, head, chunk, 300 * MB, tail)
        assert answer(data) == (413, TOO_LARGE)
        assert seconds < 2
    growth_mb = (ask(proc, "rss") - rss_before) / 1024
    assert growth_mb < 32, f"max RSS grew by {growth_mb:.0f} MB for bodies cut at 64 KiB"
    assert httpx.post(f"{url}{HOOK}", json={"task_id": "task-1", "status": "finished"}).status_code == 200
    assert finish(proc) == ""


# deadlines long enough that the whole flood is in before any of it expires
@pytest.mark.parametrize("child", [2.5], indirect=True)
def test_a_flood_of_slow_connections_keeps_descriptors_bounded_and_real_senders_served(child) -> None:
    url, proc = child
    addr = address(url)
    flood: list[socket.socket] = []
    try:
        for i in range(400):  # more than the 256 descriptors the receiver's process may have
            sock = socket.create_connection(addr, timeout=5)
            # and never the rest: of the head (the first half), or of the body (the second)
            sock.sendall(b"POST " + HOOK_BYTES + b" HTTP/1.1\r\nhost: x\r\n" if i < 200 else
                         b"POST " + HOOK_BYTES + b" HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{")
            flood.append(sock)
        # while they hang, real events get through (the first waits its turn behind the
        # flood; by the next, every slow connection has been read as far as it goes), and
        # the process holds the capped connections and its own descriptors, no more
        for _ in range(3):
            response = httpx.post(f"{url}{HOOK}", json={"task_id": "task-1", "status": "finished"}, timeout=3)
            assert response.status_code == 200
        assert ask(proc, "fds") < MAX_CONNECTIONS + 30
        for sock in flood:  # each closed: at once over the cap, at its deadline otherwise (a slow body: 408)
            data = read_until_closed(sock, 4)
            assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:40]
    finally:
        for sock in flood:
            sock.close()
    assert finish(proc) == ""


def test_garbage_of_every_kind_prints_nothing_on_the_runs_stderr(child) -> None:
    url, proc = child
    addr = address(url)
    garbage = (b"GARBAGE\r\n\r\n", b"POST " + HOOK_BYTES + b" HTTP/1.1\r\nhost: x\r\ncontent-length: nope\r\n\r\n",
               b"POST " + HOOK_BYTES + b" HTTP/1.1\r\nhost: x\r\ncontent-length: 7\r\n\r\n\xff\xfe{[\x00\x1b]",
               b"POST " + HOOK_BYTES + b" HTTP/1.1\r\nhost: x\r\ncontent-length: 50000\r\n\r\n" + b"[" * 50_000)
    for raw in garbage:
        with socket.create_connection(addr) as sock:
            sock.sendall(raw)
            assert read_head(sock).startswith(b"HTTP/1.1 400 "), raw[:40]
    with httpx.Client(base_url=url) as http:
        assert http.post(HOOK, json={"task_id": "task-2", "status": "finished"}).status_code == 404
        assert http.post(HOOK, json=["not", "an", "event"]).status_code == 400
        for guess in ("/hook", "/hook/sk-hook-" + "g" * 43, "/" + "sk-hook-" * 500):  # strangers guessing
            assert http.post(guess, json={"task_id": "task-1", "status": "finished"}).status_code == 404
        assert http.get(HOOK).status_code == 405
    with socket.create_connection(addr) as sock:
        sock.sendall(b"POST " + HOOK_BYTES + b" HT")  # and nothing more: closed at the deadline
        assert read_until_closed(sock, 3) == b""
    assert finish(proc) == ""
