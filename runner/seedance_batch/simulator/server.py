"""Serve the simulator with uvicorn in a background thread, on loopback.

:func:`run_simulator` is what ``run --simulate``, the tests and the benchmarks
use; :func:`serve_until_signal` is the ``seedance-batch simulate`` command.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from ..errors import UsageError
from .app import create_app
from .config import SimulatorConfig

__all__ = ["RunningSimulator", "run_simulator", "serve_in_thread", "serve_until_signal"]

START_TIMEOUT = 15.0
# Held answers are released at shutdown; this only bounds a handler that ignores that.
GRACEFUL_SECONDS = 2


@dataclass(frozen=True)
class RunningSimulator:
    """A simulator serving in this process. ``base_url`` has no trailing slash."""

    base_url: str
    port: int
    _app: Any

    def stats(self) -> dict[str, Any]:
        """The same dict as ``GET /_sim/stats``, read on the server's own thread."""
        loop = self._app.state.runtime.loop
        state = self._app.state.sim
        if loop is None or loop.is_closed():
            return state.stats()

        async def read() -> dict[str, Any]:
            return state.stats()

        return asyncio.run_coroutine_threadsafe(read(), loop).result(timeout=10)


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
    sock.listen(2048)
    return sock


@contextmanager
def serve_in_thread(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, before_stop: Callable[[], None] | None = None
) -> Iterator[str]:
    """Serve any ASGI ``app`` with uvicorn in a daemon thread; yields its base URL.

    Quiet (warnings only, no access log), so it never slows down a benchmark.
    ``before_stop`` runs first on exit (the simulator releases held answers there).
    """
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=GRACEFUL_SECONDS,
    ))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn:{bound}", daemon=True)
    thread.start()
    try:
        _wait_started(server, thread)
        yield f"http://{host}:{bound}"
    finally:
        if before_stop is not None:
            before_stop()
        server.should_exit = True
        thread.join(timeout=GRACEFUL_SECONDS + 10)
        sock.close()


@contextmanager
def run_simulator(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], float] = time.time,
) -> Iterator[RunningSimulator]:
    """Start the simulator on ``host:port`` (0: a free port) and stop it on exit.

    >>> with run_simulator(SimulatorConfig(time_scale=0.001)) as sim:  # doctest: +SKIP
    ...     httpx.get(f"{sim.base_url}/_sim/stats").json()
    """
    app = create_app(config or SimulatorConfig(), clock=clock)
    with serve_in_thread(app, host=host, port=port, before_stop=app.state.runtime.begin_shutdown) as base_url:
        yield RunningSimulator(base_url, int(base_url.rsplit(":", 1)[1]), app)


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the simulator stopped while starting; see the log above")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the simulator did not start within {START_TIMEOUT:g} s")
        time.sleep(0.01)


def serve_until_signal(config: SimulatorConfig, *, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then shut down cleanly.

    ``announce`` gets the base URL once the server answers.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with run_simulator(config, host=host, port=port) as sim:
            announce(sim.base_url)
            while not stop.wait(1.0):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
