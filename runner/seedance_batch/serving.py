"""Serve an ASGI app with uvicorn in a background thread: the simulator and the webhook receiver.

:func:`serve_in_thread` binds the socket itself (so a bad address is one line, and
port 0 means any free port), runs uvicorn quietly (no access log, no per-connection
tracebacks) and, given :class:`ConnectionLimits`, guards the server for exposure to
the internet: a cap on connections that drops the slowest first, deadlines for the
request head and the whole answer, nothing printed per request.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import UsageError

__all__ = ["ConnectionLimits", "serve_in_thread"]

START_TIMEOUT = 15.0
# Held answers are released at shutdown; this only bounds a handler that ignores that.
GRACEFUL_SECONDS = 2
# The kernel's queue of connections not yet accepted: they cost the process no descriptor,
# so a burst waits there rather than being dropped (a dropped SYN costs its sender 1 s).
LISTEN_BACKLOG = 2048
# A guarded server accepts at most this many connections per event-loop turn. A refused
# connection's descriptor is freed only a few turns later (asyncio sets a transport up over
# two turns before the protocol sees it, and closes it on the next), so a flood holds a few
# bursts beyond the cap at once: 16 keeps that to tens of descriptors, and still accepts
# thousands of connections a second (with 64 a turn, 400 slow connections once held 194
# descriptors at a time; with 16, about 120).
ACCEPT_BURST = 16
# Where a guarded server's per-connection messages go (a bad request line, an exception in
# the app): nowhere by default. A stranger must not be able to write to the run's stderr;
# attach a handler here to debug.
QUIET_LOG = logging.getLogger("seedance_batch.http.guarded")
QUIET_LOG.addHandler(logging.NullHandler())
QUIET_LOG.propagate = False
QUIET_LOG.setLevel(logging.WARNING)  # also skips uvicorn's per-connection TRACE lines


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one connection of a server exposed to strangers may hold, and for how long.

    ``max_connections``: open connections at once (their descriptors are the point: a
    run needs its own for submits and files). One more closes the connection that has
    waited longest for a request head or the rest of a body (a slow or idle one: a real
    sender's request comes in its first packets), or, when every one is being answered,
    is answered 503 and closed.
    ``head_seconds``: from the connection (or the previous answer) to a complete request
    head; ``request_seconds``: from the head to the answer written (body, handler and a
    client slow to read it). Past either the connection is closed. Both are deadlines,
    not idle timers: a byte a second does not keep a connection open.
    ``keep_alive_seconds``: an idle kept-alive connection is closed after this.
    """

    max_connections: int
    head_seconds: float
    request_seconds: float
    keep_alive_seconds: float


# Sent to a connection over the cap before closing it: it has asked nothing yet, but a
# client reading an answer learns why (with Connection: close, never kept).
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class _GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap, request deadlines and no logging.

    uvicorn has ``limit_concurrency`` (checked only once a request head arrived, so a
    connection that never sends one holds its descriptor forever) and
    ``timeout_keep_alive`` (armed only after a first answer, and cancelled by any byte),
    but no deadline for a fresh connection's request: these hooks add it.
    """

    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger = self.access_logger = QUIET_LOG
        self.access_log = False
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = ""  # "head": waiting for a request head; "request": answering one
        self._since = 0.0  # when the phase began (loop time)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._make_room():
            transport.write(_BUSY)
            transport.close()
            return
        self._watch()

    def _make_room(self) -> bool:
        """Under the cap, or made so by closing the connection that has waited longest for a request."""
        live = [c for c in self.connections if c is not self and not c.transport.is_closing()]
        if len(live) < self.limits.max_connections:
            return True
        waiting = [c for c in live if isinstance(c, _GuardedH11Protocol) and c._waiting()]
        if not waiting:
            return False
        min(waiting, key=lambda c: c._since).transport.close()
        return True

    def _waiting(self) -> bool:
        """Waiting for a request head, or for the rest of a body (a real sender's come at once)."""
        if self._phase == "head":
            return True
        cycle = self.cycle
        return cycle is not None and cycle.more_body and not cycle.response_started

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # answered before the body was read (413, 408): do not drain the rest of it
            self.transport.close()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """At server shutdown, a request still arriving is not waited for."""
        if self.cycle is not None and not self.cycle.response_complete and self.cycle.more_body:
            self.transport.close()
            return
        super().shutdown()

    def _watch(self) -> None:
        # h11's IDLE: no request head yet (none, or a part of one); past it, one is being answered
        if self.transport.is_closing():
            self._disarm()
            return
        phase = "head" if self.conn.their_state is h11.IDLE else "request"
        if phase != self._phase:
            self._disarm()
            seconds = self.limits.head_seconds if phase == "head" else self.limits.request_seconds
            self._deadline = self.loop.call_later(seconds, self._expire)
            self._phase, self._since = phase, self.loop.time()

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = ""


def _ignore_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The guarded server's loop error handler: print nothing.

    asyncio's default prints a traceback for each failed accept (out of descriptors)
    and each broken connection: strangers could fill the run's stderr with them.
    """


class _GuardedServer(uvicorn.Server):
    """A uvicorn server whose event loop prints nothing for connection errors."""

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(_ignore_loop_error)
        await super().serve(sockets)


def _config(app: Any, limits: ConnectionLimits | None) -> uvicorn.Config:
    """The uvicorn config: the simulator's defaults (speed), or guarded by ``limits``."""
    options: dict[str, Any] = {}
    if limits is not None:
        protocol = type("GuardedH11Protocol", (_GuardedH11Protocol,), {"limits": limits})
        # backlog: how many connections asyncio accepts per turn (ACCEPT_BURST); it also
        # sets the kernel's queue, which serve_in_thread sets back to LISTEN_BACKLOG.
        # log_config None: a library does not reconfigure the process's logging.
        options = {"http": protocol, "ws": "none", "backlog": ACCEPT_BURST, "log_config": None,
                   "timeout_keep_alive": limits.keep_alive_seconds}
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                          timeout_graceful_shutdown=GRACEFUL_SECONDS, **options)


def _bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say so,
    # and without it every answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = "check --host" if isinstance(exc, socket.gaierror) else "pick another --port, or 0 for any free port"
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}", hint=hint) from None
    sock.listen(LISTEN_BACKLOG)
    return sock


@contextmanager
def serve_in_thread(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, before_stop: Callable[[], None] | None = None,
    limits: ConnectionLimits | None = None,
) -> Iterator[str]:
    """Serve any ASGI ``app`` with uvicorn in a daemon thread; yields its base URL.

    Quiet (warnings only, no access log), so it never slows down a benchmark.
    ``before_stop`` runs first on exit (the simulator releases held answers there).
    ``limits``: for a server strangers reach (see :class:`ConnectionLimits`); it then
    prints nothing per connection or request. Without them, uvicorn's defaults.
    """
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    config = _config(app, limits)
    server = uvicorn.Server(config) if limits is None else _GuardedServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn:{bound}", daemon=True)
    thread.start()
    try:
        _wait_started(server, thread)
        if limits is not None:
            sock.listen(LISTEN_BACKLOG)  # see _config: a long queue, short accept bursts
        yield f"http://{host}:{bound}"
    finally:
        if before_stop is not None:
            before_stop()
        server.should_exit = True
        thread.join(timeout=GRACEFUL_SECONDS + 10)
        sock.close()


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server stopped while starting; see the log above")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start within {START_TIMEOUT:g} s")
        time.sleep(0.01)


