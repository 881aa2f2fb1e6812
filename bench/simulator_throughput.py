"""Benchmark: how many requests a second the APIDot simulator answers, in-process.

Two figures, faults and webhooks off, the simulator in this process (as with
`run --simulate`):
- server ceiling: N submits over `concurrency` keep-alive connections from a bare
  asyncio client (a few lines of HTTP/1.1, so the client costs next to nothing);
- through httpx: N submits then N status calls with httpx.AsyncClient, `concurrency`
  in flight, with p50/p99 latency: what a real client of this project sees.
Prints one JSON line.

    python bench/simulator_throughput.py                  # 2,000 jobs, 32 in flight
    python bench/simulator_throughput.py --jobs 5000 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

from seedance_batch.simulator import SimulatorConfig, run_simulator

KEY = {"Authorization": "Bearer sk-sim-bench"}


def job(i: int) -> dict[str, object]:
    """The ``i``-th submit body: valid, and different from every other."""
    return {"model": "seedance-2-fast", "input": {
        "prompt": f"bench shot {i}: a paper boat drifting down a rainy street", "duration": 5 + i % 10,
        "resolution": "480p" if i % 2 else "720p", "aspect_ratio": "16:9", "generate_audio": True}}


async def drive(base_url: str, jobs: int, concurrency: int) -> dict[str, object]:
    """Submits then status calls through httpx: rates and p50/p99 latency."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=KEY, limits=limits, timeout=30) as client:

        async def call(method: str, url: str, **kwargs: object) -> httpx.Response:
            async with gate:
                start = time.perf_counter()
                response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()
                return response

        start = time.perf_counter()
        answers = await asyncio.gather(*(call("POST", "/api/generate/submit", json=job(i)) for i in range(jobs)))
        submit_seconds = time.perf_counter() - start
        task_ids = [a.json()["data"]["task_id"] for a in answers]
        start = time.perf_counter()
        await asyncio.gather(*(call("GET", f"/api/generate/status/{t}") for t in task_ids))
        status_seconds = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "httpx_submits_per_s": round(jobs / submit_seconds),
        "httpx_status_per_s": round(jobs / status_seconds),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
    }


async def bare_submits(port: int, jobs: int, concurrency: int, offset: int) -> float:
    """Submits per second from ``concurrency`` bare keep-alive connections."""

    async def connection(numbers: range) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in numbers:
            payload = json.dumps(job(offset + i)).encode()
            writer.write(
                b"POST /api/generate/submit HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer sk-sim-bench\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
        writer.close()

    share = jobs // concurrency
    start = time.perf_counter()
    await asyncio.gather(*(connection(range(k * share, (k + 1) * share)) for k in range(concurrency)))
    return share * concurrency / (time.perf_counter() - start)


def main() -> None:
    """Run both measurements against one in-process simulator; print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with run_simulator(SimulatorConfig(time_scale=0.001)) as sim:
        ceiling = asyncio.run(bare_submits(sim.port, args.jobs, args.concurrency, offset=10**6))
        figures: dict[str, object] = {"bench": "simulator_throughput", "jobs": args.jobs, "concurrency": args.concurrency,
                                      "server_submits_per_s": round(ceiling)}
        figures.update(asyncio.run(drive(sim.base_url, args.jobs, args.concurrency)))
        figures["tasks"] = sim.stats()["tasks"]["total"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
