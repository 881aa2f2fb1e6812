"""summary.md's changes: what changed against the ledger, redacted and bounded like the rest of it."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from seedance_batch.errors import Location
from seedance_batch.expand import Job, request_key
from seedance_batch.ledger import JobRecord, JobState
from seedance_batch.models import load_catalog, price_jobs
from seedance_batch.plan import Plan, make_plan
from seedance_batch.report.data import build_report
from seedance_batch.report.markdown import MAX_CHANGES, MAX_SUMMARY, report_markdown
from seedance_batch.selection import Selection

CATALOG = load_catalog()
KEY = "sk-live-0123456789abcdef"


def job(label: str, prompt: str, duration: int = 5) -> Job:
    request = {"model": "seedance-2", "input": {"prompt": prompt, "duration": duration, "resolution": "720p"}}
    return Job(campaign="spring", shot="s", label=label, combination={}, request=request, key=request_key(request),
               output_path=f"{label}.mp4", location=Location("m.yaml", 1, 1))


def done(of: Job) -> JobRecord:
    return JobRecord(campaign="spring", key=of.key, label=of.label, shot="s", request=of.request,
                     state=JobState.DONE, task_id="t", credits=200, cost_usd=Decimal("1.00"))


def summary(jobs: list[Job], records: list[JobRecord], only: Selection | None = None) -> str:
    plan: Plan = make_plan(price_jobs(jobs, CATALOG), records, manifest_path=Path("m.yaml"), catalog=CATALOG,
                           budget_usd=None, only=only)
    report = build_report(plan, records, report_dir="reports", output_dir="renders", manifest_sha256="0" * 64,
                          generated_at=datetime(2026, 4, 19, tzinfo=timezone.utc), secrets=(KEY,))
    return report_markdown(report)


def test_changes_and_removed_jobs_are_listed_with_labels_in_code() -> None:
    olds = [job("a`b", "a lighthouse at dusk"), job("c", "a harbour"), job("gone", "a pier")]
    news = [job("a`b", "a lighthouse at dawn"), job("c", "a harbour", duration=8)]
    text = summary(news, [done(j) for j in olds])
    assert (
        "#### Changes (2 changed, 1 removed)\n\n"
        "- ``a`b``: $1.00 for the new render; the old render cost $1.00 (1 done)\n"
        "  - `prompt: a lighthouse at [-dusk-]{+dawn+}`\n"
        "- `c`: $1.60 for the new render; the old render cost $1.00 (1 done)\n"
        "  - `duration: 5 -> 8`\n"
        "- removed `gone` (done, $1.00 spent): no longer in the manifest; kept in the ledger, nothing is deleted\n"
    ) in text


def test_a_key_in_a_prompt_never_reaches_the_summary() -> None:
    text = summary([job("a", f"use {KEY} now")], [done(job("a", f"use {KEY} then"))])
    assert KEY not in text
    assert "`prompt: use REDACTED [-then-]{+now+}`" in text


def test_changes_are_bounded_and_say_how_many_were_left_out() -> None:
    count = MAX_CHANGES + 7
    olds = [job(f"j{i}", f"take {i} old " + "word " * 200) for i in range(count)]
    news = [job(f"j{i}", f"take {i} new{i} " + "word " * 200) for i in range(count)]
    text = summary(news, [done(j) for j in olds])
    assert text.count("\n- `j") == MAX_CHANGES
    assert "_and 7 more: `seedance-batch plan --json` lists every change_" in text
    assert len(text) <= MAX_SUMMARY


def test_a_selection_is_named_and_its_removed_jobs_only() -> None:
    olds = [job("hero/a", "x"), job("hero/gone", "y"), job("street/gone", "z"), job("street/b", "w")]
    text = summary([job("hero/a", "x"), job("street/b", "w")], [done(j) for j in olds],
                   only=Selection(("hero/*",)))
    assert "**Selection**: `1 of 2 jobs selected by --only 'hero/*'`  \n" in text
    assert "removed `hero/gone`" in text and "street/gone" not in text
