"""Callback delivery: POST each task's terminal event to its ``callback_url``.

Deliveries run in the background on the server's loop (a timer per task,
then a task per delivery) and never hold up a response. Each one is a single
POST with a short timeout; a receiver that fails or is down is counted, not
retried (assumption: APIDot documents no retry policy, and the contract tells
receivers to reconcile with the status endpoint anyway). Callback URLs are
never logged. ``WebhookFaults.drop`` loses events (never sent, counted
``dropped``); with ``WebhookFaults.secret`` every delivery is signed the Standard
Webhooks way (:mod:`.signing`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx

from .service import SimService
from .signing import message_id, signature_headers
from .tasks import Task, draw

__all__ = ["WebhookSender", "event_body"]

log = logging.getLogger(__name__)


def event_body(shape: str, task_id: str, status: str, files: list[dict[str, str]]) -> dict[str, Any]:
    """The event as the contract shows it: ``{"data": {task_id, status, files}}`` or flat."""
    event = {"task_id": task_id, "status": status, "files": files}
    return {"data": event} if shape == "nested" else event


class WebhookSender:
    """Schedules and sends callback events; counts them in ``service.webhooks``."""

    def __init__(self, service: SimService, client: httpx.AsyncClient) -> None:
        self.service = service
        self.client = client
        self._timers: set[asyncio.TimerHandle] = set()
        self._running: set[asyncio.Task[None]] = set()

    def schedule(self, task: Task, base_url: str) -> None:
        """Arrange delivery of ``task``'s terminal event, if it has a callback and an end."""
        if task.callback_url is None or not task.terminal:
            return
        faults, seed = self.service.config.webhooks, self.service.config.faults.seed
        if draw(seed, "webhook-drop", task.task_id) < faults.drop:
            self.service.webhooks["dropped"] += 1  # lost on the way: the receiver never hears of it
            return
        delay = max(0.0, task.ends_at - self.service.clock())
        if draw(seed, "webhook-delay", task.task_id) < faults.delay:
            delay += faults.delay_seconds * self.service.config.time_scale
            self.service.webhooks["delayed"] += 1
        self.service.webhooks["scheduled"] += 1
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            self._timers.discard(handle)
            self._spawn(lambda: self._deliver(task, base_url))

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def _spawn(self, make: Callable[[], Any]) -> None:
        running = asyncio.get_running_loop().create_task(make())
        self._running.add(running)
        running.add_done_callback(self._running.discard)

    async def _deliver(self, task: Task, base_url: str) -> None:
        service, seed = self.service, self.service.config.faults.seed
        shape = service.config.webhooks.shape
        status = task.fate  # terminal: finished or failed
        files = service.files(task, base_url, service.clock()) if status == "finished" else []
        event = event_body(shape, task.task_id, status, files)
        await self._post(task, status, event)
        if draw(seed, "webhook-duplicate", task.task_id) < service.config.webhooks.duplicate:
            service.webhooks["duplicates"] += 1
            await self._post(task, status, event)
        if draw(seed, "webhook-stale", task.task_id) < service.config.webhooks.out_of_order:
            service.webhooks["stale"] += 1
            await self._post(task, "running", event_body(shape, task.task_id, "running", []))

    def _headers(self, task: Task, status: str, body: bytes) -> dict[str, str]:
        """Content type, and the Standard Webhooks signature when signing (a forged one for some)."""
        headers = {"content-type": "application/json"}
        hooks, seed = self.service.config.webhooks, self.service.config.faults.seed
        key = hooks.signing_key
        if key is None:
            return headers
        if draw(seed, "webhook-forged", task.task_id) < hooks.bad_signature:
            key = secrets.token_bytes(len(key))
        self.service.webhooks["signed"] += 1
        stamp = int(time.time() + hooks.timestamp_offset)  # the receiver's clock is real time
        return {**headers, **signature_headers(key, message_id(seed, task.task_id, status), stamp, body)}

    async def _post(self, task: Task, status: str, event: dict[str, Any]) -> None:
        self.service.webhooks["sent"] += 1
        body = json.dumps(event, separators=(",", ":")).encode()  # the exact bytes signed are the bytes sent
        try:
            response = await self.client.post(task.callback_url or "", content=body,
                                              headers=self._headers(task, status, body))
        except httpx.HTTPError as exc:
            # The exception text can hold the URL; say only what kind of failure it was.
            log.debug("webhook delivery failed: %s", type(exc).__name__)
            self.service.webhooks["failed"] += 1
            return
        self.service.webhooks["delivered" if response.is_success else "failed"] += 1

    async def close(self) -> None:
        """Drop pending deliveries and stop the ones in flight (at shutdown)."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for running in list(self._running):
            running.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await self.client.aclose()
