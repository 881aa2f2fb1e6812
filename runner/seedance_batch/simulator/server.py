"""Serve the simulator with uvicorn in a background thread, on loopback.

:func:`run_simulator` is what ``run --simulate``, the tests and the benchmarks
use; :func:`serve_until_signal` is the ``seedance-batch simulate`` command. The
server helper itself lives beside the webhook receiver's, in :mod:`seedance_batch.serving`.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..serving import serve_in_thread
from .app import create_app
from .config import SimulatorConfig
from .service import SimService

__all__ = ["RunningSimulator", "run_simulator", "serve_in_thread", "serve_until_signal"]


@dataclass(frozen=True)
class RunningSimulator:
    """A simulator serving in this process. ``base_url`` has no trailing slash."""

    base_url: str
    port: int
    _app: Any

    def stats(self) -> dict[str, Any]:
        """The same dict as ``GET /_sim/stats``, read on the server's own thread."""
        return self._read(lambda service: service.stats())

    def tasks(self) -> dict[str, Any]:
        """The same dict as ``GET /_sim/tasks`` (every task's times and fate)."""
        return self._read(lambda service: service.task_times())

    def _read(self, what: Callable[[SimService], dict[str, Any]]) -> dict[str, Any]:
        loop = self._app.state.runtime.loop
        service: SimService = self._app.state.sim
        if loop is None or loop.is_closed():
            return what(service)

        async def read() -> dict[str, Any]:
            return what(service)

        return asyncio.run_coroutine_threadsafe(read(), loop).result(timeout=10)


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
