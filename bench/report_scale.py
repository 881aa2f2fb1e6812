"""Benchmark: writing the five reports of a 2,000-job campaign, and opening report.html.

Prints one JSON line: jobs, seconds to build and write all five reports, report.html
size (total and per job), and, when Debian's chromium and chromedriver are there, the
milliseconds headless Chromium takes to parse the page and run its script (DOMContentLoaded
and load), and how many videos it asked for at load (lazy loading: only those near
the first screen). Target on a 2-core machine: under 2 s to write, under 1.5 s to open.

    python bench/report_scale.py                 # 2,000 jobs, half of them done
    python bench/report_scale.py --jobs 10000 --no-browser
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from report_campaign import SAMPLE_MP4, make_job, make_record  # noqa: E402
from seedance_batch.ledger import JobRecord, JobState  # noqa: E402
from seedance_batch.models import load_catalog, price_jobs  # noqa: E402
from seedance_batch.plan import Plan, make_plan  # noqa: E402
from seedance_batch.report import write_reports  # noqa: E402

RATIOS = ("16:9", "9:16", "1:1", "4:3")
SHOTS = 10
LONG_PROMPT = ("Slow dolly in on a sunlit kitchen table, steam rising from a cup; a warm narrator speaks "
               "the tagline in the local language while the camera settles on the product. ") * 3


def campaign(folder: Path, jobs: int) -> tuple[Plan, list[JobRecord]]:
    """10 shots x N locales x 4 ratios; every other job done with its file on disk."""
    locales = [f"l{i:04d}" for i in range(max(1, jobs // (SHOTS * len(RATIOS))))]
    catalog = load_catalog()
    made = [make_job(f"shot-{s}", locale, ratio, prompt=f"{LONG_PROMPT} ({s} {locale} {ratio})")
            for s in range(SHOTS) for locale in locales for ratio in RATIOS]
    records = []
    for index, job in enumerate(made):
        if index % 2 == 0:
            records.append(make_record(job, JobState.DONE, finished_at="2026-04-19T10:01:35Z",
                                       downloaded_at="2026-04-19T10:01:40Z"))
            target = folder / "renders" / job.output_path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(SAMPLE_MP4, target) if _same_device(folder) else shutil.copyfile(SAMPLE_MP4, target)
        elif index % 7 == 1:
            records.append(make_record(job, JobState.FAILED, error_message="content policy"))
    plan = make_plan(price_jobs(made, catalog), records, manifest_path=Path("campaign.yaml"), catalog=catalog,
                     budget_usd=Decimal(5000))
    return plan, records


def _same_device(folder: Path) -> bool:
    return os.stat(folder).st_dev == os.stat(SAMPLE_MP4).st_dev


def open_in_chromium(html: Path) -> dict[str, float] | None:
    """Milliseconds to DOMContentLoaded and load, and videos given a src at load; None without a browser."""
    if not (Path("/usr/bin/chromium").is_file() and Path("/usr/bin/chromedriver").is_file()):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as profile:
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--window-size=1400,1000", f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(html.resolve().as_uri())
            timing = driver.execute_script(
                "const t = performance.getEntriesByType('navigation')[0];"
                "return [t.domContentLoadedEventEnd, t.loadEventEnd,"
                " document.querySelectorAll('video[src]').length, document.querySelectorAll('video').length];")
        finally:
            driver.quit()
    return {"dom_ms": round(timing[0]), "load_ms": round(timing[1]), "videos_loaded": timing[2],
            "videos": timing[3]}


def main() -> None:
    """Write the reports of a made-up campaign, time it, open it; print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chdir(folder)
        plan, records = campaign(folder, args.jobs)
        start = time.perf_counter()
        paths = write_reports(plan, records, out_dir=Path("reports/bench"), output_dir=Path("renders"),
                              manifest_sha256="0" * 64, step_summary=False)
        seconds = time.perf_counter() - start
        size = paths.html.stat().st_size
        result = {"bench": "report_scale", "jobs": len(plan.jobs), "write_s": round(seconds, 3),
                  "html_bytes": size, "html_bytes_per_job": round(size / len(plan.jobs)),
                  "csv_bytes": paths.csv.stat().st_size}
        if not args.no_browser:
            result["browser"] = open_in_chromium(paths.html)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
