"""Benchmark: the source media check on a 1,000-job manifest sharing 30 URLs.

A loopback media host (tests/media_hosts.py; each answer held ``--latency-ms``, a
CDN's round trip) serves the 30 files. Measured, with a real SQLite ledger as the cache:

* the check itself (``check_media``) cold (empty cache), cached (a second plan within
  the hour) and revalidated (after the hour: conditional HEADs answered 304);
* ``seedance-batch plan`` end to end, as a user runs it: without the check, then
  ``--check-media`` cold and cached (each a fresh process: includes start-up).

Requests are counted by the host. Prints one JSON line.

    python bench/media_check.py
    python bench/media_check.py --jobs 1000 --urls 30 --latency-ms 50
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from media_hosts import MediaHost, Served  # noqa: E402
from seedance_batch.ledger import open_ledger  # noqa: E402
from seedance_batch.media import check_media, media_uses  # noqa: E402
from seedance_batch.pipeline import load_plan  # noqa: E402

RATIOS = ["16:9", "9:16", "1:1", "4:3", "21:9"]
DURATIONS = [4, 6, 8, 10]


def write_manifest(folder: Path, base_url: str, jobs: int, urls: int) -> Path:
    """``jobs`` jobs (locales x 5 ratios x 4 durations), each framed by one of ``urls`` images."""
    locales = max(1, jobs // (len(RATIOS) * len(DURATIONS)))
    rows = ["id,asset"] + [f"l{i:04d},frame-{i % urls:03d}" for i in range(locales)]
    (folder / "locales.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    path = folder / "bench.yaml"
    path.write_text(f"""version: 1
name: media-bench
vars:
  cdn: {base_url}
defaults:
  model: seedance-2-fast
  resolution: 720p
matrix:
  locale: {{from: locales.csv}}
  aspect_ratio: {json.dumps(RATIOS)}
  duration: {json.dumps(DURATIONS)}
shots:
  - id: hero
    prompt: "The product on a sunlit table for {{{{ locale.id }}}}, {{{{ aspect_ratio }}}}, {{{{ duration }}}} s."
    image_urls: ["{{{{ cdn }}}}/{{{{ locale.asset }}}}.png?sig=bench"]
""", encoding="utf-8")
    return path


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def cli_seconds(folder: Path, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIDOT_", "SEEDANCE_"))}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "seedance_batch", "plan", "bench.yaml", *args], cwd=folder,
                          env={**env, "CI": "true"}, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"plan {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--urls", type=int, default=30)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    files = {f"/frame-{i:03d}.png": Served(etag=f'"e{i}"', delay=args.latency_ms / 1000) for i in range(args.urls)}
    with tempfile.TemporaryDirectory() as tmp, MediaHost(files).serve() as host:
        folder = Path(tmp)
        manifest = write_manifest(folder, host.base_url, args.jobs, args.urls)
        (_, plan), plan_seconds = timed(lambda: load_plan(manifest, None))
        uses = media_uses((p.priced.job for p in plan.to_submit), plan.catalog.media)
        figures: dict[str, Any] = {"jobs": len(plan.to_submit), "distinct_urls": len(uses),
                                   "latency_ms": args.latency_ms, "plan_seconds": round(plan_seconds, 3)}
        now = datetime.now(timezone.utc)
        with open_ledger(folder / "cache.sqlite") as cache:
            for name, at in (("cold", now), ("cached", now + timedelta(minutes=30)),
                             ("revalidated", now + timedelta(hours=2))):
                before = len(host.seen)
                report, seconds = timed(lambda at=at: check_media(uses, plan.catalog.media, cache, now=at))
                assert not report.problems, report.problems
                figures[name] = {"requests": len(host.seen) - before, "seconds": round(seconds, 3),
                                 "from_cache": report.cached, "unchanged": report.unchanged}
        figures["cli_plan_seconds"] = round(cli_seconds(folder), 3)
        before = len(host.seen)
        figures["cli_check_cold_seconds"] = round(cli_seconds(folder, "--check-media"), 3)
        figures["cli_check_cold_requests"] = len(host.seen) - before
        before = len(host.seen)
        figures["cli_check_cached_seconds"] = round(cli_seconds(folder, "--check-media"), 3)
        figures["cli_check_cached_requests"] = len(host.seen) - before
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
