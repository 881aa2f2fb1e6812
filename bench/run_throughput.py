"""Benchmark: a whole run of N jobs against the simulator (in its own process).

The simulator allows R submits a second (a 60 s sliding window of R x 60) and
renders every job in L seconds (no jitter unless --jitter). The runner submits
at --client-rate (default R), tracks, downloads. Prints one JSON line:

    wall_s vs ideal_s = N / R + L        target: wall within 10% of ideal at N = 2,000
    submits_per_s vs R, rate_limited     target: no 429 with the client at or under R
    status_calls_per_job                 target: <= 1.5 per finished job...
    detection_delay_sim_s (mean, p95)    ...with no more than 1 s (simulated) of lag
    client_cpu_s_per_job                 the runner's CPU (the simulator's is not counted)

    python bench/run_throughput.py                        # N=2000, R=50/s, L=60 s simulated x 0.05
    python bench/run_throughput.py --jobs 500 --jitter 0.25

The time scale compresses the simulator's 60 s rate-limit window with everything
else. At 0.05 the window is 3 s of real time, against which a 2% pacing margin is
60 ms: wider than this machine's event-loop jitter, as a real 60 s window is. At
0.01 (a 0.6 s window, 12 ms of margin) that jitter alone draws a few 429s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import anyio
import httpx
import stamina.instrumentation

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from engine_support import make_jobs, plan_for
from seedance_batch.ledger import open_ledger
from seedance_batch.run.client import ApiClient
from seedance_batch.run.engine import RunSettings, execute


def serve(conn, time_scale: float, render_sim_s: float, jitter: float, per_minute: int) -> None:
    """Child process: run the simulator until told to stop."""
    from seedance_batch.simulator import Latency, SimulatorConfig, run_simulator

    latency = Latency(queue_seconds=0.0, base_seconds=render_sim_s, per_video_second=0.0, jitter=jitter,
                      model_factor={})
    config = SimulatorConfig(time_scale=time_scale, latency=latency, submits_per_minute=per_minute)
    with run_simulator(config) as sim:
        conn.send(sim.base_url)
        conn.recv()


def run_bench(args: argparse.Namespace) -> dict[str, object]:
    render_sim_s = args.latency / args.time_scale
    parent, child = multiprocessing.Pipe()
    # The simulator's time_scale compresses its rate-limit window too (60 simulated seconds),
    # so R a real second is R x 60 x time_scale per (compressed) minute.
    per_window = round(args.rate * 60 * args.time_scale)
    proc = multiprocessing.Process(target=serve, args=(child, args.time_scale, render_sim_s, args.jitter,
                                                       per_window), daemon=True)
    proc.start()
    base_url = parent.recv()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result, wall, cpu, ledger_path = _run(args, base_url, Path(tmp))
            stats = httpx.get(f"{base_url}/_sim/stats").json()
            delays = _delays(ledger_path, args)
    finally:
        parent.send("stop")
        proc.join(10)
    done = result.counts().get("done", 0)
    ideal = args.jobs / args.rate + args.latency
    return {
        "bench": "run_throughput", "jobs": args.jobs, "done": done, "R_per_s": args.rate,
        "client_rate_per_s": args.client_rate or args.rate, "L_s": args.latency, "jitter": args.jitter,
        "wall_s": round(wall, 2), "ideal_s": round(ideal, 2), "wall_vs_ideal": round(wall / ideal, 3),
        "submits_per_s": round(args.jobs / max(1e-9, _submit_span(result.records)), 2),
        "rate_limited": stats["rate_limited"], "status_calls": stats["status_calls"],
        "status_calls_per_job": round(stats["status_calls"] / max(1, done), 3),
        "detection_delay_sim_s": {"mean": round(statistics.fmean(delays), 3),
                                  "p95": round(sorted(delays)[int(0.95 * (len(delays) - 1))], 3)} if delays else None,
        "client_cpu_s_per_job": round(cpu / args.jobs, 5), "exit_code": result.exit_code,
    }


def _run(args: argparse.Namespace, base_url: str, tmp: Path):
    # As the CLI does: retries are counted in the ledger, not logged (this process is the application).
    stamina.instrumentation.set_on_retry_hooks([])
    jobs = make_jobs(args.jobs, campaign="bench")
    client_rate = args.client_rate or args.rate
    settings = RunSettings(
        submits_per_minute=client_rate * 60 * args.time_scale,  # the engine divides by time_scale
        status_per_minute=client_rate * 60 * 20 * args.time_scale,
        max_in_flight=int(client_rate * args.latency * 2) + 20, timeout=render_timeout(args),
        poll_interval=0.25, output_dir=tmp / "renders", time_scale=args.time_scale,
    )
    with open_ledger(tmp / "ledger.sqlite") as ledger:
        plan = plan_for(jobs, ledger)

        async def go():
            async with ApiClient(base_url, "sk-sim-bench") as client:
                return await execute(plan, settings, client=client, ledger=ledger)

        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = anyio.run(go)
        return result, time.perf_counter() - wall0, time.process_time() - cpu0, ledger.path


def render_timeout(args: argparse.Namespace) -> float:
    return 20 * args.latency / args.time_scale + 600


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _delays(ledger_path: Path, args: argparse.Namespace) -> list[float]:
    """Simulated seconds between a render's end and the runner noticing, an upper bound:
    counted from just before the submit was sent (the task is created a little later).
    Only exact with no jitter."""
    if args.jitter:
        return []
    db = sqlite3.connect(ledger_path)
    rows = db.execute("SELECT submitting_at, finished_at FROM jobs WHERE finished_at IS NOT NULL").fetchall()
    db.close()
    return [max(0.0, (_ts(done) - _ts(sent) - args.latency) / args.time_scale) for sent, done in rows]


def _submit_span(records) -> float:
    stamps = sorted(_ts(r.submitted_at) for r in records if r.submitted_at)
    return (stamps[-1] - stamps[0]) * len(stamps) / max(1, len(stamps) - 1) if len(stamps) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=50.0, help="server submit limit R, per second")
    parser.add_argument("--client-rate", type=float, default=None, help="the runner's limit (default R)")
    parser.add_argument("--latency", type=float, default=3.0, help="render time L, real seconds")
    parser.add_argument("--time-scale", type=float, default=0.05, help="real seconds per simulated second")
    parser.add_argument("--jitter", type=float, default=0.0, help="render time jitter (fraction)")
    print(json.dumps(run_bench(parser.parse_args())), flush=True)


if __name__ == "__main__":
    main()
