"""The callback receiver: APIDot's task events, verified, persisted first, then handed on.

A small Starlette app, served by uvicorn in a thread: for as long as a run lasts (the
run's own), or as a long-lived service (``seedance-batch receive``, :mod:`.receiving`).
Each POST, in this order, the cheap refusals first:

1. the verifiers that need no body (:mod:`.verifiers`; ``secret-path``: the run's secret
   must be in the path) are asked before a byte of the body is read: 404 otherwise;
2. the body is bounded (:class:`ReceiverLimits`): over 64 KiB is a 413 (Content-Length
   checked first, the stream counted as it comes), slower than :data:`BODY_SECONDS` a 408;
   a Content-Type that is not JSON is a 415 (none at all is read as JSON);
3. the verifiers that need the body (``standard-webhooks``: a signature) are asked: 401;
4. the body must be an event in either shape seen in the wild, ``{"data": {task_id,
   status, files}}`` or the same fields flat (read by
   :func:`~seedance_batch.run.answers.webhook_event`): 400 says what is wrong;
5. its task id must be one the campaign submitted (the campaign the secret names, or the
   run's): 404 otherwise, so nobody else's events get in;
6. the event is written to the ledger (a ``webhook`` audit event holding the status word,
   scrubbed and cut, and the number of files, never the body) *before* the 2xx, so an
   acknowledged event is never lost; then the run is poked (``on_event``).

An event changes no job's state by itself: a runner reads it from the ledger (a cursor,
:mod:`.run.events`) and checks that task's status at once instead of at its next poll.
The status endpoint stays the source of truth, so a duplicate, a late, an out-of-order
or a forged event appends an audit line and costs one status call at most (at most
:data:`MAX_EVENTS_PER_TASK` lines per task while the receiver serves; past them an event
is answered 200 and dropped). An unsigned "failed" never fails a job (it could lead to
paying twice with --retry-failed), a "running" never revives a timed-out one.

Strangers can reach it (the callback URL is public): besides the limits above,
connections are capped and a request head must arrive in time
(:class:`~seedance_batch.serving.ConnectionLimits`). Nothing is printed per request:
refusals go to the ``seedance_batch.webhooks`` logger (INFO, silent unless a handler is
attached, as ``receive`` does), without the body or the path, at most one line per
kind of refusal every :data:`LOG_EVERY_SECONDS`, with a count of the rest.

The receiver runs on its own event loop (uvicorn's thread). Its ledger calls go through
:class:`~seedance_batch.ledger.AsyncLedger` and the hand-over to the run through a worker
thread, so neither a slow ledger nor a busy run stalls that loop.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .ledger import AsyncLedger, JobRecord, Ledger
from .run.answers import BadEvent, WebhookEvent, webhook_event
from .verifiers import Delivery, StaticTokens, Verdict, Verifier
from .verifiers.secret_path import SecretPath

__all__ = ["EventRelay", "ReceiverLimits", "ReceiverStats", "WebhookEvent", "create_receiver", "record_event",
           "run_receiver", "secret_path_for"]

log = logging.getLogger(__name__)

# An event is a few hundred bytes (a task id, a status word, a file URL or two): 64 KiB
# leaves room for long signed URLs and is still nothing to hold in memory.
MAX_BODY_BYTES = 64 * 1024
# Events stored (and relayed to the engine) per task while one receiver serves. APIDot sends
# one per terminal state, plus duplicates and a manual "retry callback"; past 20 the audit
# trail would only be recording a flood (each line is small, but their number is not).
MAX_EVENTS_PER_TASK = 20
# Open connections at once. APIDot sends one event per task when it ends, seconds apart;
# 64 is ample, and far from the 1,024 descriptors a process often may have (the run
# needs its own for submits, downloads and the ledger).
MAX_CONNECTIONS = 64
# From the connection to a complete request head. A real sender's head arrives in one
# packet; 10 s leaves room for a slow network.
HEAD_SECONDS = 10.0
# From the head to the last body byte; past it, 408.
BODY_SECONDS = 10.0
# From the head to the answer written, past BODY_SECONDS: storing the event may wait up to
# the ledger's 10 s lock timeout, and the answer is a few bytes.
ANSWER_SECONDS = 15.0
# An idle kept-alive connection is closed after this (uvicorn's own default).
KEEP_ALIVE_SECONDS = 5.0
# A flood of refusals logs one line per kind this often, with the count of the others.
LOG_EVERY_SECONDS = 10.0


async def record_event(ledger: AsyncLedger, event: WebhookEvent, campaign: str | None) -> JobRecord | None:
    """Persist one delivery as an audit line; the job's row, or None when the task id is not one of ours.

    ``campaign``: only its task ids are ours (a ledger may hold several); None: any the
    ledger holds. The job's row is never changed: each event is only a hint that makes
    the run ask the status endpoint now. Its file URL is never recorded (a forged one
    would plant a video).
    """
    rec = await ledger.by_task_id(event.task_id)
    if rec is None or (campaign is not None and rec.campaign != campaign):
        return None
    await ledger.note(rec.campaign, rec.key, "webhook", {"status": event.status, "files": len(event.file_urls)})
    return rec


def secret_path_for(token: str, campaign: str) -> tuple[Verifier, ...]:
    """The verifiers of a run's own receiver: its one callback token, naming its campaign."""
    return (SecretPath(StaticTokens({token: campaign})),)


class EventRelay:
    """Hands receiver events (on the receiver's thread) to whoever is connected: the run."""

    def __init__(self) -> None:
        self._deliver: Callable[[WebhookEvent], None] | None = None

    def connect(self, deliver: Callable[[WebhookEvent], None] | None) -> None:
        self._deliver = deliver

    def __call__(self, event: WebhookEvent) -> None:
        deliver = self._deliver
        if deliver is not None:
            deliver(event)


@dataclass(frozen=True, slots=True)
class ReceiverLimits:
    """How much a caller of the receiver may send, and how slowly (defaults: the constants above)."""

    max_body_bytes: int = MAX_BODY_BYTES
    max_connections: int = MAX_CONNECTIONS
    head_seconds: float = HEAD_SECONDS
    body_seconds: float = BODY_SECONDS
    answer_seconds: float = ANSWER_SECONDS
    keep_alive_seconds: float = KEEP_ALIVE_SECONDS


class ReceiverStats:
    """What a receiver did: events stored, requests refused by HTTP status; refusals logged, bounded."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.stored = 0
        self.refused: Counter[int] = Counter()
        self._clock = clock
        self._logged_at: dict[str, float] = {}
        self._quiet: Counter[str] = Counter()  # refusals of each reason not logged since its last line

    def refuse(self, status: int, reason: str, client: str) -> None:
        """Count a refusal; log it unless its reason was logged less than LOG_EVERY_SECONDS ago."""
        self.refused[status] += 1
        now = self._clock()
        last = self._logged_at.get(reason)
        if last is not None and now - last < LOG_EVERY_SECONDS:
            self._quiet[reason] += 1
            return
        more = self._quiet.pop(reason, 0)
        also = f" (and {more} more like it since the last line)" if more else ""
        log.info("webhook receiver: refused a POST from %s: %d, %s%s", client, status, reason, also)
        self._logged_at[reason] = now


class _TooLarge(Exception):
    """The body passed the limit while it was being read."""


def _refuse(status: int, error: str, *, close: bool = False) -> JSONResponse:
    # Connection: close when the rest of the body (if any) is never read.
    return JSONResponse({"ok": False, "error": error}, status_code=status,
                        headers={"connection": "close"} if close else None)


def _declared_too_large(headers: Headers, limit: int) -> bool:
    """Content-Length says more than ``limit`` (h11 has already refused a malformed one)."""
    declared = headers.get("content-length")
    return declared is not None and declared.strip().isdigit() and int(declared) > limit


def _not_json(headers: Headers) -> bool:
    """A Content-Type that says the body is not JSON (none at all is read as JSON: some senders omit it)."""
    kind = headers.get("content-type")
    if kind is None:
        return False
    media = kind.split(";", 1)[0].strip().lower()
    return media != "application/json" and not media.endswith("+json")


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, counted as it streams (a chunked body declares no length); :class:`_TooLarge` past ``limit``."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(body: bytes) -> WebhookEvent:
    """The event in ``body``; :class:`BadEvent` says what is wrong."""
    try:
        payload = json.loads(body)
    except RecursionError:  # "[[[[...": json's recursion guard, not a server error
        raise BadEvent("the body nests too deeply to be an event") from None
    except ValueError:  # not JSON, not UTF-8, or a number with too many digits
        raise BadEvent("the body is not JSON") from None
    return webhook_event(payload)


async def _judge(verifiers: Sequence[Verifier], delivery: Delivery, *, body: bool) -> Verdict:
    """Every verifier of this stage (``body``: those that need it) must accept; they must agree on the campaign."""
    campaign: str | None = None
    for verifier in verifiers:
        if verifier.needs_body is not body:
            continue
        verdict = await verifier.verify(delivery)
        if not verdict.ok:
            return verdict
        if verdict.campaign is not None:
            if campaign is not None and verdict.campaign != campaign:
                return Verdict(False, 404, "the verifiers name different campaigns")
            campaign = verdict.campaign
    return Verdict(True, campaign=campaign)


class _Deliveries:
    """Stores and relays events: at most :data:`MAX_EVENTS_PER_TASK` per task. Runs on the receiver's loop."""

    def __init__(self, ledger: Ledger, on_event: Callable[[WebhookEvent], None] | None) -> None:
        self._sync, self._on_event = ledger, on_event
        self._ledger: AsyncLedger | None = None
        self._stored: dict[str, int] = {}  # only task ids found to be ours: bounded by the ledger

    async def __call__(self, event: WebhookEvent, campaign: str | None) -> bool:
        """True when the task is ours (the event stored and relayed, or its task past its quota)."""
        if self._stored.get(event.task_id, 0) >= MAX_EVENTS_PER_TASK:
            return True  # ours (nothing else is counted); the trail and the run have heard enough
        if self._ledger is None:
            self._ledger = AsyncLedger(self._sync)  # made on the loop that serves: the one it is used on
        if await record_event(self._ledger, event, campaign) is None:
            return False
        self._stored[event.task_id] = self._stored.get(event.task_id, 0) + 1
        if self._on_event is not None:
            with suppress(Exception):  # the event is persisted; the run's cursor finds it anyway
                # a worker thread: the relay waits for the run's own loop, which must not stall this one
                await anyio.to_thread.run_sync(self._on_event, event)
        return True


def create_receiver(ledger: Ledger, on_event: Callable[[WebhookEvent], None] | None = None, *,
                    verifiers: Sequence[Verifier], campaign: str | None = None,
                    limits: ReceiverLimits | None = None, stats: ReceiverStats | None = None) -> Starlette:
    """The receiver app; POST to any path the verifiers accept.

    ``verifiers``: every one must accept a request (required: nothing is accepted
    unverified by accident; ``()`` accepts anyone, for tests of the other checks).
    ``campaign``: the only campaign whose task ids are accepted (None: the one the
    verifiers name, else any in the ledger). ``stats``: counters to fill (``receive``).
    """
    limits = limits or ReceiverLimits()
    stats = stats or ReceiverStats()
    deliver = _Deliveries(ledger, on_event)

    async def receive(request: Request) -> JSONResponse:
        client = request.client.host if request.client else "an unknown address"

        def refused(status: int, error: str, reason: str, *, close: bool = False) -> JSONResponse:
            stats.refuse(status, reason, client)
            return _refuse(status, error, close=close)

        headers = request.headers
        early = await _judge(verifiers, Delivery(request.url.path, headers), body=False)
        if not early.ok:
            return refused(early.status, "not found" if early.status == 404 else "refused", early.reason, close=True)
        if _declared_too_large(headers, limits.max_body_bytes):
            return refused(413, f"the body is larger than {limits.max_body_bytes} bytes", "body too large", close=True)
        if _not_json(headers):
            return refused(415, "the body must be JSON (Content-Type: application/json)", "not JSON", close=True)
        try:
            with anyio.fail_after(limits.body_seconds):
                body = await _read_body(request, limits.max_body_bytes)
        except _TooLarge:
            return refused(413, f"the body is larger than {limits.max_body_bytes} bytes", "body too large", close=True)
        except TimeoutError:
            return refused(408, f"the body did not arrive within {limits.body_seconds:g} s", "body too slow",
                           close=True)
        except ClientDisconnect:
            return refused(400, "the body was cut short", "body cut short", close=True)
        late = await _judge(verifiers, Delivery(request.url.path, headers, body), body=True)
        if not late.ok:
            return refused(late.status, "refused", late.reason)
        try:
            event = _decode(body)
        except BadEvent as exc:
            return refused(400, str(exc), "not an event")
        named = early.campaign or late.campaign
        if campaign is not None and named is not None and named != campaign:
            return refused(404, "unknown task id", "a secret of another campaign")
        wanted = campaign or named
        try:
            known = await deliver(event, wanted)
        except Exception:  # the ledger cannot be written: not stored, so not 2xx
            return JSONResponse({"ok": False, "error": "the event could not be stored"}, status_code=503)
        if not known:
            return refused(404, "unknown task id", "a task id not of this campaign")
        stats.stored += 1
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])


@contextmanager
def run_receiver(ledger: Ledger, *, host: str = "127.0.0.1", port: int = 0,
                 on_event: Callable[[WebhookEvent], None] | None = None, verifiers: Sequence[Verifier],
                 campaign: str | None = None, limits: ReceiverLimits | None = None,
                 stats: ReceiverStats | None = None) -> Iterator[str]:
    """Serve the receiver on ``host:port`` (0: a free port) in a thread; yields its base URL.

    ``verifiers``, ``campaign``, ``stats``: see :func:`create_receiver`; ``limits``: :class:`ReceiverLimits`.
    """
    from .serving import ConnectionLimits, serve_in_thread

    limits = limits or ReceiverLimits()
    guard = ConnectionLimits(max_connections=limits.max_connections, head_seconds=limits.head_seconds,
                             request_seconds=limits.body_seconds + limits.answer_seconds,
                             keep_alive_seconds=limits.keep_alive_seconds)
    app = create_receiver(ledger, on_event, verifiers=verifiers, campaign=campaign, limits=limits, stats=stats)
    with serve_in_thread(app, host=host, port=port, limits=guard) as base_url:
        yield base_url
