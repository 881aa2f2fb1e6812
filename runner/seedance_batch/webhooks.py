"""The callback receiver: APIDot's task events for ``run.callback_url``, persisted first.

A small Starlette app, served by uvicorn in a thread while a run lasts:

- accepts both shapes seen in the wild, ``{"data": {task_id, status, files}}`` and the
  same fields flat; ``files`` items may be ``{"file_url": ...}`` objects or plain URLs
  (read by :func:`~seedance_batch.run.answers.webhook_event`, the reader of status
  answers too);
- accepts only task ids this run's campaign submitted (404 otherwise: nobody else's
  events get in, not even another campaign's in the same ledger), answers 400 with what
  is wrong on a bad body;
- writes the event to the ledger (a ``webhook`` audit event holding the status word,
  scrubbed and cut to ``MAX_STATUS_WORD``, and the number of files, never the body)
  *before* answering 2xx, so an acknowledged event is never lost;
- is idempotent: an event changes no job's state by itself, so a duplicate, a late or a
  forged event appends an audit line and nothing else (at most
  :data:`MAX_EVENTS_PER_TASK` lines per task while the receiver serves; past them an event
  is answered 200 and dropped);
- then tells the engine (``on_event``), which checks the task's status at once instead
  of waiting for its next poll: events skip the wait, the status endpoint stays the
  source of truth. No signature is documented, so an event alone never fails, finishes
  or revives a job (a forged "failed" could otherwise lead to paying twice with
  --retry-failed, a forged "running" would turn a timed-out job back into a submitted one).

Strangers can reach it (the callback URL is public), so it is bounded (:class:`ReceiverLimits`):
a body over 64 KiB is a 413 (Content-Length checked first, the stream counted as it
comes), a body slower than :data:`BODY_SECONDS` a 408, connections are capped and a
request head must arrive in time (:class:`~seedance_batch.serving.ConnectionLimits`), and
nothing is printed per request or connection.

The receiver runs on its own event loop (uvicorn's thread). Its ledger calls go
through :class:`~seedance_batch.ledger.AsyncLedger` and the hand-over to the run
through a worker thread, so neither a slow ledger nor a busy run stalls that loop
(its deadlines, other requests).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .ledger import AsyncLedger, Ledger
from .run.answers import BadEvent, WebhookEvent, webhook_event

__all__ = ["EventRelay", "ReceiverLimits", "WebhookEvent", "create_receiver", "record_event", "run_receiver"]

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


async def record_event(ledger: AsyncLedger, event: WebhookEvent, campaign: str) -> bool:
    """Persist one delivery as an audit line; False when the task id is not one of ours.

    ``campaign``: only its task ids are ours (a ledger may hold several). The job's row
    is never changed: events are unsigned, so each is only a hint that makes the run ask
    the status endpoint now. Its file URL is never recorded (a forged one would plant a
    video), a "failed" never fails a job (it would cost a resubmit), and a "running"
    never moves a job back (a timed-out job would be reported as still in flight).
    """
    rec = await ledger.by_task_id(event.task_id)
    if rec is None or rec.campaign != campaign:
        return False
    await ledger.note(rec.campaign, rec.key, "webhook", {"status": event.status, "files": len(event.file_urls)})
    return True


class EventRelay:
    """Hands receiver events (on the receiver's thread) to whoever is connected: the engine."""

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


class _TooLarge(Exception):
    """The body passed the limit while it was being read."""


def _refuse(status: int, error: str) -> JSONResponse:
    # Connection: close, as the rest of the body (if any) is never read.
    return JSONResponse({"ok": False, "error": error}, status_code=status, headers={"connection": "close"})


def _declared_too_large(headers: Headers, limit: int) -> bool:
    """Content-Length says more than ``limit`` (h11 has already refused a malformed one)."""
    declared = headers.get("content-length")
    return declared is not None and declared.strip().isdigit() and int(declared) > limit


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


class _Deliveries:
    """Stores and relays events: at most :data:`MAX_EVENTS_PER_TASK` per task. Runs on the receiver's loop."""

    def __init__(self, ledger: Ledger, on_event: Callable[[WebhookEvent], None] | None, campaign: str) -> None:
        self._sync, self._on_event, self._campaign = ledger, on_event, campaign
        self._ledger: AsyncLedger | None = None
        self._stored: dict[str, int] = {}  # only task ids found to be ours: bounded by the ledger

    async def __call__(self, event: WebhookEvent) -> bool:
        """True when the task is ours (the event stored and relayed, or its task past its quota)."""
        if self._stored.get(event.task_id, 0) >= MAX_EVENTS_PER_TASK:
            return True  # ours (nothing else is counted); the trail and the engine have heard enough
        if self._ledger is None:
            self._ledger = AsyncLedger(self._sync)  # made on the loop that serves: the one it is used on
        if not await record_event(self._ledger, event, self._campaign):
            return False
        self._stored[event.task_id] = self._stored.get(event.task_id, 0) + 1
        if self._on_event is not None:
            with suppress(Exception):  # the event is persisted; polling still finds the task
                # a worker thread: the relay waits for the run's own loop, which must not stall this one
                await anyio.to_thread.run_sync(self._on_event, event)
        return True


def create_receiver(ledger: Ledger, on_event: Callable[[WebhookEvent], None] | None = None, *,
                    campaign: str, limits: ReceiverLimits | None = None) -> Starlette:
    """The receiver app; POST to any path. ``campaign``: the only campaign whose task ids are accepted."""
    limits = limits or ReceiverLimits()
    deliver = _Deliveries(ledger, on_event, campaign)

    async def receive(request: Request) -> JSONResponse:
        if _declared_too_large(request.headers, limits.max_body_bytes):
            return _refuse(413, f"the body is larger than {limits.max_body_bytes} bytes")
        try:
            with anyio.fail_after(limits.body_seconds):
                body = await _read_body(request, limits.max_body_bytes)
        except _TooLarge:
            return _refuse(413, f"the body is larger than {limits.max_body_bytes} bytes")
        except TimeoutError:
            return _refuse(408, f"the body did not arrive within {limits.body_seconds:g} s")
        except ClientDisconnect:
            return _refuse(400, "the body was cut short")
        try:
            event = _decode(body)
        except BadEvent as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        try:
            known = await deliver(event)
        except Exception:  # the ledger cannot be written: not stored, so not 2xx
            return JSONResponse({"ok": False, "error": "the event could not be stored"}, status_code=503)
        if not known:
            return JSONResponse({"ok": False, "error": "unknown task id"}, status_code=404)
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])


@contextmanager
def run_receiver(ledger: Ledger, *, host: str = "127.0.0.1", port: int = 0,
                 on_event: Callable[[WebhookEvent], None] | None = None, campaign: str,
                 limits: ReceiverLimits | None = None) -> Iterator[str]:
    """Serve the receiver on ``host:port`` (0: a free port) in a thread; yields its base URL.

    ``campaign``: accept only that campaign's task ids (a run passes its own).
    ``limits``: see :class:`ReceiverLimits`.
    """
    from .serving import ConnectionLimits, serve_in_thread

    limits = limits or ReceiverLimits()
    guard = ConnectionLimits(max_connections=limits.max_connections, head_seconds=limits.head_seconds,
                             request_seconds=limits.body_seconds + limits.answer_seconds,
                             keep_alive_seconds=limits.keep_alive_seconds)
    app = create_receiver(ledger, on_event, campaign=campaign, limits=limits)
    with serve_in_thread(app, host=host, port=port, limits=guard) as base_url:
        yield base_url
