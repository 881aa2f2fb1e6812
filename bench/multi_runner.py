"""Benchmark: N jobs at one account limit R, rendered by 1, 2 and 4 runners on one PostgreSQL ledger.

Each runner is a real ``seedance-batch run`` process in a folder of its own; the ledger is a
PostgreSQL server of the bench's own (``initdb`` + ``pg_ctl``: tests/pg_server.py) with
``pg_stat_statements`` loaded, so every statement a runner sends is counted by the server;
the simulator, in this process, enforces the limit R in fixed windows (the contract's) and
its stats count the 429s and status calls.

Prints one JSON line per runner count: the wall time against the ideal N/R + L (L: one job's
render time, the latency the last submit adds), the 429s, status calls per job, and database
statements per job (every statement is one round trip here: the ledger's connections are in
autocommit, a transaction's BEGIN and COMMIT are counted as theirs). The target: 4 runners
within 10% of the ideal with 0 429s, at most 10 statements per job. More runners cannot be
faster than the account's limit: they share it.

    python bench/multi_runner.py [--jobs 2000] [--per-minute 480] [--time-scale 1] [--runners 1 2 4]
    python bench/multi_runner.py --time-scale 0.1     # ten times quicker, and biased (below)

The wall time is from the runners' launch to the last one's exit, split into ``first_submit_s``
(the runners' start-up: Python, the plan, the ledger), ``submit_span_s`` (first to last submit,
against N/R: the schedule's turns are 3% wider than the limit) and ``tail_s`` (the last submit
to the last exit: one render, its download, the reports). The runners start from bytecode, as
an installed package does: the bench compiles the package first (a machine with
PYTHONDONTWRITEBYTECODE set never caches it for an editable install, and every runner would
compile it again).

It runs in real time by default (2,000 jobs at 480 a minute: about 4.5 minutes per runner
count), because ``--time-scale`` compresses the service's seconds (renders, rate windows,
leases) but not the runners' own: their start-up, the reports they write and the machine's
jitter stay real seconds. At 0.1 a 10 s window is 1 s and the submits take 25 s instead of
250 s, so those seconds weigh ten times what they do against the service, and four runner
processes starting at once on a 2-core machine (they would be four machines in CI) are a
tenth of the wall time rather than a hundredth.

Figures are noisy on a shared machine: run it twice, and compare runs made in the same minute.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import seedance_batch
from engine_support import one_shot_manifest
from pg_server import postgres_server
from seedance_batch.simulator import Faults, Latency, SimulatorConfig, run_simulator

# One job's render, service seconds: queued 2, then 8 + 1 per video second (4 s videos).
RENDER = Latency(queue_seconds=2.0, base_seconds=8.0, per_video_second=1.0, jitter=0.0)
RENDER_SECONDS = 2.0 + 8.0 + 4.0
KEY = "sk-sim-bench"


def manifest(jobs: int, per_minute: float) -> str:
    return one_shot_manifest("bench", [f"v{i:05d}" for i in range(jobs)],
                             {"submits_per_minute": per_minute, "status_per_minute": 6000,
                              "max_in_flight": min(jobs, 1000)})


def one(server: Any, runners: int, jobs: int, per_minute: float, scale: float, root: Path) -> dict[str, Any]:
    """Render the campaign with ``runners`` processes on a fresh database; what it took."""
    database = f"bench{runners}"
    with psycopg.connect(server.socket_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{database}"')
    url = server.url(database)
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    folders = []
    for index in range(runners):
        where = root / f"{database}-{index}"
        where.mkdir()
        (where / "m.yaml").write_text(manifest(jobs, per_minute))
        folders.append(where)
    config = SimulatorConfig(time_scale=scale, latency=RENDER, faults=Faults(task_stuck=0.0),
                             submits_per_minute=per_minute)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIDOT_", "SEEDANCE_"))}
    with run_simulator(config) as sim:
        env.update({"CI": "true", "APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": KEY})
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("SELECT pg_stat_statements_reset()")
        started, epoch = time.monotonic(), time.time()
        # Each runner's progress goes to a file of its own: a pipe that nobody drains while another
        # runner is waited for fills up, and a runner blocked writing to it stops renewing its lease.
        logs = [(where / "run.log").open("wb") for where in folders]
        procs = [subprocess.Popen([sys.executable, "-m", "seedance_batch", "run", "m.yaml", "--time-scale",
                                   str(scale), "--state", url, "--yes"], cwd=where, env=env,
                                  stdout=subprocess.DEVNULL, stderr=log) for where, log in zip(folders, logs, strict=True)]
        for proc, log in zip(procs, logs, strict=True):
            proc.wait(timeout=3600)
            log.close()
        wall = time.monotonic() - started
        errors = [(where / "run.log").read_text(errors="replace") for where in folders]
        stats = sim.stats()
        created = [task["created"] for task in sim.tasks()["tasks"].values()]
    with psycopg.connect(url, autocommit=True) as db:
        row = db.execute("SELECT sum(s.calls) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                         "WHERE d.datname = %s", (database,)).fetchone()
        done = db.execute("SELECT count(*) FROM seedance.jobs WHERE state = 'done'").fetchone()
    statements = int(row[0] or 0) if row else 0
    ideal = jobs / (per_minute / 60.0) * scale + RENDER_SECONDS * scale
    return {
        "runners": runners, "jobs": jobs, "done": int(done[0]) if done else 0,
        "exit_codes": [proc.returncode for proc in procs],
        "wall_s": round(wall, 2), "ideal_s": round(ideal, 2), "over_ideal": round(wall / ideal - 1, 3),
        # the submits' span (first to last, real seconds) against N/R: the runners' start-up is before it
        "first_submit_s": round(min(created) - epoch, 2) if created else None,
        "submit_span_s": round(max(created) - min(created), 2) if created else None,
        "tail_s": round(epoch + wall - max(created), 2) if created else None, "render_s": round(RENDER_SECONDS * scale, 2),
        "ideal_span_s": round(jobs / (per_minute / 60.0) * scale, 2),
        "rate_limited": stats["rate_limited"]["submit"], "billed_twice": sum(
            1 for count in stats["submits"]["by_body"].values() if count > 1),
        "status_calls_per_job": round(stats["status_calls"] / jobs, 2),
        "db_statements_per_job": round(statements / jobs, 2),
        "errors": sorted({err.strip().splitlines()[-1] for err in errors if proc_failed(err)}),
    }


def proc_failed(err: str) -> bool:
    """Whether a runner's stderr ends with an error (its last line), not a job's progress."""
    lines = err.strip().splitlines()
    return bool(lines) and ("Traceback" in err or lines[-1].startswith(("error", "Error")) or (": " in lines[-1]
                            and not lines[-1].startswith("[")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--per-minute", type=float, default=480.0, help="the account's submit limit R "
                        "(service minutes), the manifest's and the simulator's")
    parser.add_argument("--time-scale", type=float, default=1.0, help="real seconds per service second "
                        "(1: real time; below 1 the runners' own seconds weigh more: see the module)")
    parser.add_argument("--runners", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    # the runners import the package from bytecode, as from an installed one (see the module)
    compileall.compile_dir(Path(seedance_batch.__file__).parent, quiet=1)
    with postgres_server(("shared_preload_libraries=pg_stat_statements", "pg_stat_statements.max=10000")) as server, \
            tempfile.TemporaryDirectory(prefix="multi-runner-") as root:
        for runners in args.runners:
            print(json.dumps(one(server, runners, args.jobs, args.per_minute, args.time_scale, Path(root))),
                  flush=True)


if __name__ == "__main__":
    main()
