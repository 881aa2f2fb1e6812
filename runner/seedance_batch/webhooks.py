"""The callback receiver: APIDot's task events for ``run.callback_url``, persisted first.

A small Starlette app, served by uvicorn in a thread while a run lasts:

- accepts both shapes seen in the wild, ``{"data": {task_id, status, files}}`` and the
  same fields flat; ``files`` items may be ``{"file_url": ...}`` objects or plain URLs;
- accepts only task ids this ledger submitted (404 otherwise: nobody else's events
  get in), answers 400 with what is wrong on a bad body;
- writes the event to the ledger (a ``webhook`` audit event; ``finished`` + the file URL
  for a finished task) *before* answering 2xx, so an acknowledged event is never lost;
- is idempotent: a duplicate or late event appends an audit line and changes
  nothing (ledger transitions never move a job backwards);
- then tells the engine (``on_event``), which checks the task's status at once instead
  of waiting for its next poll: events skip the wait, the status endpoint stays the
  source of truth. No signature is documented, so an event alone never fails a job
  (a forged "failed" could otherwise lead to paying twice with --retry-failed): the
  status answer does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .ledger import Ledger

__all__ = ["EventRelay", "WebhookEvent", "create_receiver", "parse_event", "record_event", "run_receiver"]


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One delivery, normalised."""

    task_id: str
    status: str
    file_urls: tuple[str, ...] = ()


class BadEvent(ValueError):
    """The body is not a task event."""


def parse_event(body: Any) -> WebhookEvent:
    """A :class:`WebhookEvent` from either documented shape; :class:`BadEvent` says what is wrong."""
    if not isinstance(body, Mapping):
        raise BadEvent("the body must be a JSON object")
    data = body.get("data") if isinstance(body.get("data"), Mapping) else body
    task_id, status = data.get("task_id"), data.get("status")
    if not isinstance(task_id, str) or not task_id:
        raise BadEvent("task_id is missing (expected {\"data\": {\"task_id\", \"status\", \"files\"}} or the same flat)")
    if not isinstance(status, str) or not status:
        raise BadEvent("status is missing")
    files = data.get("files") or []
    if isinstance(data.get("output"), Mapping):
        files = data["output"].get("files") or files
    if not isinstance(files, list):
        raise BadEvent("files must be a list")
    urls = tuple(f.get("file_url") if isinstance(f, Mapping) else f for f in files)
    if not all(isinstance(u, str) and u for u in urls):
        raise BadEvent("each file must be a URL or an object with file_url")
    return WebhookEvent(task_id, status, urls)


def record_event(ledger: Ledger, event: WebhookEvent) -> bool:
    """Persist one delivery; False when the task id is not one of ours."""
    rec = ledger.by_task_id(event.task_id)
    if rec is None:
        return False
    ledger.note(rec.campaign, rec.key, "webhook", {"status": event.status, "files": len(event.file_urls)})
    # Events are unsigned: a terminal one is a hint that makes the run ask the status
    # endpoint now. Its file URL is never recorded (a forged one would plant a video),
    # and a "failed" never fails a job (it would cost a resubmit).
    if event.status not in ("finished", "failed"):
        ledger.status_seen(rec.campaign, rec.key, event.status)
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


def create_receiver(ledger: Ledger, on_event: Callable[[WebhookEvent], None] | None = None) -> Starlette:
    """The receiver app; POST to any path."""

    async def receive(request: Request) -> JSONResponse:
        try:
            event = parse_event(await request.json())
        except BadEvent as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        except ValueError:
            return JSONResponse({"ok": False, "error": "the body is not JSON"}, status_code=400)
        if not record_event(ledger, event):
            return JSONResponse({"ok": False, "error": "unknown task id"}, status_code=404)
        if on_event is not None:
            try:
                on_event(event)
            except Exception:  # noqa: BLE001 - the event is persisted; polling still finds it
                pass
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])


@contextmanager
def run_receiver(ledger: Ledger, *, host: str = "127.0.0.1", port: int = 0,
                 on_event: Callable[[WebhookEvent], None] | None = None) -> Iterator[str]:
    """Serve the receiver on ``host:port`` (0: a free port) in a thread; yields its base URL."""
    from .simulator.server import serve_in_thread

    with serve_in_thread(create_receiver(ledger, on_event), host=host, port=port) as base_url:
        yield base_url
