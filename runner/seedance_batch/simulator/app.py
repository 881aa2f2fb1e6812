"""The simulator's HTTP face: a Starlette app over :class:`~.service.SimService`.

Routes::

    POST /api/generate/submit              the contract's submit
    GET  /api/generate/status/{task_id}    the contract's status
    GET  /files/{task_id}/{name}           result files: video.mp4, thumb.png (signed, expiring URLs)
    GET  /_sim/stats                       counters for tests and benchmarks
    GET  /_sim/tasks                       every task's times and fate (what a benchmark measures lag against)
    GET  /                                 what this server is

Handlers read the request, ask the service what to answer, and act out faults.
Any exception inside a handler becomes a JSON 500, so a bug never hangs a client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .assets import FILES, signature_ok
from .config import SimulatorConfig
from .service import Reply, SimService, error_body
from .webhooks import WebhookSender

__all__ = ["Runtime", "create_app"]


# Cut off mid-JSON: what a proxy that dies halfway through an answer leaves behind.
MALFORMED_BODY = b'{"code": 200, "data": {"task_id": "task-'


class Runtime:
    """Loop-bound parts of a running simulator: the shutdown signal and webhook sender.

    Created lazily on the server's loop, so ``create_app`` works under any ASGI
    server (or test transport) with or without a lifespan.
    """

    def __init__(self, service: SimService) -> None:
        self.service = service
        self.loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._sender: WebhookSender | None = None

    @property
    def closing(self) -> asyncio.Event:
        """Set when the server begins shutting down (bound to the serving loop on first use)."""
        if self._closing is None:
            self.loop = asyncio.get_running_loop()
            self._closing = asyncio.Event()
        return self._closing

    @property
    def sender(self) -> WebhookSender:
        """The webhook sender, with its HTTP client made on the serving loop at first use."""
        if self._sender is None:
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
            self._sender = WebhookSender(self.service, httpx.AsyncClient(timeout=10.0, limits=limits))
        return self._sender

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # Bind to the serving loop now, so begin_shutdown() and stats() can reach it from any thread.
        closing = self.closing
        try:
            yield
        finally:
            closing.set()
            if self._sender is not None:
                await self._sender.close()

    def begin_shutdown(self) -> None:
        """Release held (slow, hanging) answers; callable from any thread."""
        if self.loop is not None and self._closing is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._closing.set)

    async def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; True if the server began shutting down meanwhile."""
        try:
            await asyncio.wait_for(self.closing.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            return False
        return True


class _Endpoints:
    """The route handlers, bound to one service and runtime."""

    def __init__(self, service: SimService, runtime: Runtime) -> None:
        self.service = service
        self.runtime = runtime

    async def submit(self, request: Request) -> Response:
        """``POST /api/generate/submit``; a created task gets its webhook scheduled."""
        raw = await request.body()
        reply, task = self.service.submit(request.headers.get("authorization"), raw)
        if task is not None:
            self.runtime.sender.schedule(task, str(request.base_url))
        return await self._answer(request, reply)

    async def status(self, request: Request) -> Response:
        """``GET /api/generate/status/{task_id}``."""
        task_id = request.path_params["task_id"]
        reply = self.service.status(request.headers.get("authorization"), task_id, str(request.base_url))
        return await self._answer(request, reply)

    async def video(self, request: Request) -> Response:
        """``GET /files/{task_id}/{name}``: the sample MP4 (or thumbnail), if the URL is signed and fresh."""
        service, task_id, name = self.service, request.path_params["task_id"], request.path_params["name"]
        now = service.clock()
        task = service.tasks.get(task_id)
        if task is None or task.status_at(now) != "finished" or name not in FILES:
            service.counts["404"] += 1
            return JSONResponse(error_body(404, "not_found", f"no file {name!r} for task {task_id!r}"), 404)
        expires, signature = request.query_params.get("expires"), request.query_params.get("signature")
        if not signature_ok(service.secret, task_id, expires, signature, name):
            service.counts["403"] += 1
            return JSONResponse(error_body(403, "forbidden", "the file URL's signature is not valid"), 403)
        if now > int(expires or 0):
            service.counts["403"] += 1
            message = "the file URL expired; ask for the task's status again for a fresh one"
            return JSONResponse(error_body(403, "url_expired", message), 403)
        media_type, content = FILES[name]
        service.counts["files_served" if name == "video.mp4" else "thumbnails_served"] += 1
        return Response(content(), media_type=media_type)

    async def stats(self, request: Request) -> Response:
        """``GET /_sim/stats``."""
        return JSONResponse(self.service.stats())

    async def tasks(self, request: Request) -> Response:
        """``GET /_sim/tasks``: see :meth:`SimService.task_times`."""
        return JSONResponse(self.service.task_times())

    async def index(self, request: Request) -> Response:
        """``GET /``: what this server is and its routes."""
        return JSONResponse({
            "service": "seedance-batch APIDot simulator",
            "submit": "POST /api/generate/submit",
            "status": "GET /api/generate/status/{task_id}",
            "stats": "GET /_sim/stats",
            "tasks": "GET /_sim/tasks",
        })

    async def _answer(self, request: Request, reply: Reply) -> Response:
        fault = reply.fault
        if fault == "drop":
            return await _drop_connection(request)
        if fault == "malformed":
            return Response(MALFORMED_BODY, 200, media_type="application/json")
        if fault == "error_code":
            return JSONResponse(error_body(500, "server_error", "internal error; please retry"), 200)
        if fault == "server_error":
            message = "the service is temporarily unavailable"
            return JSONResponse(error_body(reply.status, "server_error", message), reply.status)
        if fault == "ambiguous_submit":
            # The task exists and is billed; the client must never learn its id.
            await self.runtime.pause(self.service.config.faults.hang_seconds)
            return await _drop_connection(request)
        if fault == "slow" and await self.runtime.pause(self.service.config.faults.slow_seconds):
            return await _drop_connection(request)
        return JSONResponse(dict(reply.body or {}), reply.status, headers=dict(reply.headers))


async def _drop_connection(request: Request) -> Response:
    """Close the client's connection without a single byte of answer.

    ASGI has no way to say "hang up", so this reaches uvicorn's transport through
    the ``receive`` callable it handed us (its request cycle holds the transport).
    Once uvicorn sees the disconnect it ignores the response returned here.
    """
    cycle = getattr(request.receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:  # not served by uvicorn: the best we can do is an error
        raise RuntimeError("cannot drop the connection under this ASGI server")
    transport.close()
    for _ in range(10):  # connection_lost is scheduled with call_soon; let it run
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0)
    return Response(status_code=204)


def _crashed(service: SimService) -> Callable[[Request, Exception], Response]:
    def handler(request: Request, exc: Exception) -> Response:
        service.counts["500"] += 1
        return JSONResponse(error_body(500, "server_error", f"the simulator crashed: {type(exc).__name__}"), 500)

    return handler


def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    kind = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    return JSONResponse(error_body(status, kind, str(getattr(exc, "detail", ""))), status)


def create_app(config: SimulatorConfig | None = None, *, clock: Callable[[], float] = time.time) -> Starlette:
    """The simulator as a Starlette app. ``app.state.sim`` is its :class:`SimService`.

    ``clock`` (epoch seconds) drives task life and URL expiry; tests may pass
    their own to step time by hand.
    """
    service = SimService(config or SimulatorConfig(), clock)
    runtime = Runtime(service)
    endpoints = _Endpoints(service, runtime)
    routes = [
        Route("/api/generate/submit", endpoints.submit, methods=["POST"]),
        Route("/api/generate/status/{task_id}", endpoints.status, methods=["GET"]),
        Route("/files/{task_id}/{name}", endpoints.video, methods=["GET"]),
        Route("/_sim/stats", endpoints.stats, methods=["GET"]),
        Route("/_sim/tasks", endpoints.tasks, methods=["GET"]),
        Route("/", endpoints.index, methods=["GET"]),
    ]
    handlers = {Exception: _crashed(service), HTTPException: _http_error}
    app = Starlette(routes=routes, lifespan=runtime.lifespan, exception_handlers=handlers)
    app.state.sim = service
    app.state.runtime = runtime
    return app
