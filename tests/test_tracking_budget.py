"""Tracking against the simulator over loopback: the status budget kept, progress shown.

The simulator counts status calls in its own fixed windows and answers 429 past its limit:
set a little above the run's ``status_per_minute``, a single 429 means the run sent more
than its budget in some window. Its ``running`` answers carry ``progress``, which the run
shows on its live display.
"""

from __future__ import annotations

import io
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import anyio
from rich.console import Console

from engine_support import ALL_END, make_jobs, plan_for, run_engine, settings
from seedance_batch.ledger import open_ledger
from seedance_batch.run.client import ApiClient
from seedance_batch.run.engine import RunResult, execute
from seedance_batch.run.progress import LiveProgress, QuietProgress
from seedance_batch.simulator import Latency, SimulatorConfig, run_simulator

SCALE = 0.01
# per service minute: one status call a service second (100 a real second here), a binding limit
STATUS_PER_MINUTE = 60.0


class Recorded(QuietProgress):
    """What the run told the display about its renders' progress."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[tuple[int, float]] = []

    def rendering(self, reporting: int, percent: float) -> None:
        super().rendering(reporting, percent)
        self.told.append((reporting, percent))


def test_status_calls_never_exceed_the_runs_budget_when_it_binds(tmp_path: Path) -> None:
    jobs = make_jobs(40)
    latency = Latency(queue_seconds=0.0, base_seconds=20.0, per_video_second=0.0, jitter=0.5, model_factor={})
    config = SimulatorConfig(time_scale=SCALE, latency=latency, faults=ALL_END,
                             status_per_minute=STATUS_PER_MINUTE * 1.2)
    with open_ledger(tmp_path / "run.sqlite") as ledger, run_simulator(config) as sim:
        run_settings = replace(settings(tmp_path, status_per_minute=STATUS_PER_MINUTE, max_in_flight=40),
                               time_scale=SCALE)
        began = time.monotonic()
        result = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, run_settings)
        took = time.monotonic() - began
        stats = sim.stats()
    assert result.counts() == {"done": 40}
    assert stats["rate_limited"]["status"] == 0, stats["rate_limited"]
    # the budget bound: the calls could not all have been made faster than it allows
    calls = stats["status_calls"]
    assert took >= 0.9 * (calls - 1) * SCALE * 60.0 / STATUS_PER_MINUTE, (calls, took)


def test_the_renders_progress_reaches_the_display(tmp_path: Path) -> None:
    jobs = make_jobs(12)
    latency = Latency(queue_seconds=0.0, base_seconds=40.0, per_video_second=0.0, jitter=0.3, model_factor={})
    progress = Recorded()
    with open_ledger(tmp_path / "run.sqlite") as ledger, \
            run_simulator(SimulatorConfig(time_scale=SCALE, latency=latency, faults=ALL_END)) as sim:
        run_settings = replace(settings(tmp_path), time_scale=SCALE)

        async def go() -> RunResult:
            async with ApiClient(sim.base_url, "sk-sim-tests") as client:
                return await execute(plan_for(jobs, ledger), run_settings, client=client, ledger=ledger,
                                     progress=progress)

        anyio.run(go)
    assert len(progress.told) > 1, "no status answer's progress reached the display"
    *rendering, last = progress.told
    assert all(1 <= reporting <= 12 and 0 <= percent <= 100 for reporting, percent in rendering)
    assert any(0 < percent < 100 for _, percent in rendering)
    assert last == (0, 0.0)  # every task ended: nothing renders, the display is cleared


def _last_frame(told: list[tuple[int, float]]) -> str:
    """The live display's final frame (drawn when it stops) after these ``rendering`` calls."""
    out = io.StringIO()
    progress = LiveProgress(Console(file=out, force_terminal=True, width=200, color_system=None))
    progress.start(4, Decimal("5"), Decimal(0))
    progress.job("s/a", "submitted", "task-1")
    for reporting, percent in told:
        progress.rendering(reporting, percent)
    progress.close()
    text = out.getvalue()
    return text[text.rindex("submitted"):]


def test_the_live_display_shows_the_renders_progress_on_the_rendering_bar() -> None:
    assert "42% on average (3 reporting)" in _last_frame([(3, 41.6)])
    assert "reporting" not in _last_frame([(3, 41.6), (0, 0.0)])  # the last task ended: cleared
