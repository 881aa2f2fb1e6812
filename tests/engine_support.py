"""Helpers for the run tests: jobs built directly, a plan against a real ledger, a run
against the real simulator over loopback (no mocks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from seedance_batch.errors import Location
from seedance_batch.expand import Job, request_key
from seedance_batch.ledger import Ledger
from seedance_batch.models import load_catalog, price_jobs
from seedance_batch.plan import Plan, make_plan
from seedance_batch.run.client import ApiClient
from seedance_batch.run.engine import RunResult, RunSettings, execute
from seedance_batch.simulator import Faults

SCALE = 0.004  # a ~20 s simulated render takes ~0.08 s
# Every task ends: the simulator's default leaves 0.5% running forever, as the real service
# has some; the tests that expect every job done say so with this.
ALL_END = Faults(task_stuck=0.0)
SIM_KEY = "sk-sim-tests"


def make_jobs(count: int, *, campaign: str = "demo", duration: int = 4, resolution: str = "480p",
              model: str = "seedance-2-fast", prefix: str = "shot") -> list[Job]:
    jobs = []
    for index in range(count):
        request = {"model": model, "input": {"prompt": f"{prefix} number {index}", "duration": duration,
                                             "resolution": resolution}}
        label = f"{prefix}/{index:04d}"
        jobs.append(Job(campaign=campaign, shot=prefix, label=label, combination={"n": index}, request=request,
                        key=request_key(request), output_path=f"{campaign}/{prefix}/{index:04d}.mp4",
                        location=Location(file="m.yaml")))
    return jobs


def plan_for(jobs: list[Job], ledger: Ledger, *, budget: Decimal | None = None, retry_failed: bool = False,
             resubmit_unknown: bool = False) -> Plan:
    catalog = load_catalog()
    ledger.recover()
    return make_plan(price_jobs(jobs, catalog), ledger.records(jobs[0].campaign), manifest_path=Path("m.yaml"),
                     catalog=catalog, budget_usd=budget, retry_failed=retry_failed,
                     resubmit_unknown=resubmit_unknown)


def settings(tmp_path: Path, **overrides: Any) -> RunSettings:
    values = {"submits_per_minute": 600, "status_per_minute": 6000, "max_in_flight": 50, "max_attempts": 5,
              "timeout": 600, "poll_interval": 0.5, "retry_wait_initial": 0.05, "retry_wait_max": 0.5}
    values.update(overrides)
    return RunSettings.build(values, output_dir=tmp_path / "renders", time_scale=SCALE)


def run_engine(plan: Plan, base_url: str, ledger: Ledger, run_settings: RunSettings, *,
               key: str = SIM_KEY, timeout: Any = None) -> RunResult:
    async def go() -> RunResult:
        async with ApiClient(base_url, key, timeout=timeout) if timeout else ApiClient(base_url, key) as client:
            return await execute(plan, run_settings, client=client, ledger=ledger)

    return anyio.run(go)


def numbered_manifest(name: str, jobs: int, *, max_in_flight: int) -> str:
    """A one-shot campaign of ``jobs`` cheap jobs at 6 submits a (simulated) minute,
    for the tests that stop a real runner subprocess part way through."""
    return one_shot_manifest(name, [f"v{i:02d}" for i in range(jobs)],
                             {"submits_per_minute": 6, "max_in_flight": max_in_flight})


def one_shot_manifest(name: str, values: Sequence[str], run: Mapping[str, object]) -> str:
    """A campaign of one cheap shot, one job per value of its matrix axis ``n``, with these ``run:`` keys
    (the runner subprocess tests' and benchmarks' campaign)."""
    settings = "".join(f"  {key}: {value}\n" for key, value in run.items())
    return f"""\
version: 1
name: {name}
defaults:
  model: seedance-2-fast
  resolution: 480p
  duration: 4
matrix:
  n: [{", ".join(values)}]
shots:
  - id: s
    prompt: "shot {{{{ n }}}}"
run:
{settings}"""
