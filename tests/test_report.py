"""Reports: rows and totals from plan + ledger, and each of the five formats."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from report_campaign import (
    API_KEY,
    CATALOG,
    PRIVATE_PROMPT,
    SCRIPT_PROMPT,
    TRICKY_PROMPT,
    campaign,
    lay_out_files,
    make_job,
    make_record,
)
from seedance_batch.ledger import JobState
from seedance_batch.models import price_jobs
from seedance_batch.plan import make_plan
from seedance_batch.report import ReportPaths, write_reports
from seedance_batch.report.data import build_report
from seedance_batch.report.html import contact_sheets
from seedance_batch.report.redact import PRIVATE_PROMPT as SHOWN_FOR_PRIVATE
from seedance_batch.report.redact import redact_url
from seedance_batch.report.tables import CSV_COLUMNS

NOON = datetime(2026, 4, 19, 12, tzinfo=timezone.utc)


@pytest.fixture
def written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ReportPaths:
    """The campaign's reports written in a working directory laid out like a real one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APIDOT_API_KEY", API_KEY)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    camp = campaign()
    lay_out_files(tmp_path, camp)
    return write_reports(camp.plan, camp.records, out_dir=Path("reports/spring"), output_dir=Path("renders"),
                         manifest_sha256="ab" * 32)


def _report(camp=None, records=None, **kwargs):
    camp = camp or campaign()
    return build_report(
        camp.plan, camp.records if records is None else records, report_dir="reports/spring",
        output_dir="renders", manifest_sha256="0" * 64, generated_at=NOON,
        **kwargs,
    )


# --- rows and totals -------------------------------------------------------------------------

def test_each_job_takes_the_state_of_its_ledger_record_else_planned() -> None:
    states = {row.label: row.state for row in _report().rows}
    assert states["hero/en-US/16x9"] == "done"
    assert states["hero/fr-FR/9x16"] == "failed"
    assert states["hero/ja-JP/16x9"] == "unknown"
    assert states["hero/ja-JP/9x16"] == "timed_out"
    assert states["product/en-US/16x9"] == "submitted"
    assert states["product/en-US/9x16"] == "finished"
    assert states["outro/en-US/16x9"] == "planned"
    assert list(states) == [row.priced.job.label for row in campaign().plan.jobs]  # manifest order


def test_totals_count_states_seconds_and_money() -> None:
    totals = _report().totals
    assert totals.jobs == 18
    assert {s: n for s, n in totals.by_state.items() if n} == {
        "done": 5, "finished": 1, "submitted": 1, "planned": 8, "timed_out": 1, "unknown": 1, "failed": 1,
    }
    assert (totals.problems, totals.seconds_planned, totals.seconds_rendered) == (3, 90, 25)
    assert totals.usd_planned == Decimal("18.000")  # 18 jobs x 5 s x 40 credits x $0.005
    assert totals.credits_planned == 3600
    assert totals.usd_spent == Decimal("10.00")  # ten records, each charged $1.00
    assert totals.usd_to_render == Decimal("8.000")  # the eight planned jobs
    assert totals.credits_spent == 2000
    assert totals.comparison_usd == Decimal("0.3024") * 90
    assert totals.budget_usd == Decimal("30") and totals.within_budget


@pytest.mark.parametrize(("retry_failed", "resubmit_unknown"), [(False, False), (True, False), (True, True)])
def test_spent_and_to_render_are_the_plans_own_figures(retry_failed: bool, resubmit_unknown: bool) -> None:
    camp = campaign()
    plan = make_plan(price_jobs(list(camp.jobs.values()), CATALOG), camp.records, manifest_path=Path("c.yaml"),
                     catalog=CATALOG, budget_usd=Decimal("18.50"), retry_failed=retry_failed,
                     resubmit_unknown=resubmit_unknown)
    totals = _report(replace(camp, plan=plan)).totals
    # The failed and the unknown job are paid for again when the plan resubmits them.
    assert totals.usd_to_render == plan.usd == 8 + retry_failed + resubmit_unknown
    assert (totals.usd_spent, totals.within_budget) == (plan.spent_usd, plan.within_budget)


def test_a_plan_alone_reports_every_job_planned_and_nothing_spent() -> None:
    jobs = [make_job("hero", "en-US", "16:9"), make_job("hero", "fr-FR", "16:9")]
    plan = make_plan(price_jobs(jobs, CATALOG), [], manifest_path=Path("m.yaml"), catalog=CATALOG,
                     budget_usd=Decimal("1.50"))
    report = build_report(plan, [], report_dir="reports/spring", output_dir="renders", manifest_sha256="",
                          generated_at=NOON)
    assert [row.state for row in report.rows] == ["planned", "planned"]
    assert report.totals.usd_spent == 0 and report.started_at is None and report.duration_seconds is None
    # Two jobs at $1.00 to render against $1.50: the plan is over budget before anything is spent.
    assert report.totals.usd_to_render == Decimal("2.000") and not report.totals.within_budget


def test_without_records_the_plans_own_records_are_used() -> None:
    camp = campaign()
    states = {row.label: row.state for row in _report(camp, records=[]).rows}
    assert states["hero/en-US/16x9"] == "done" and states["hero/fr-FR/9x16"] == "failed"


def test_records_of_jobs_no_longer_in_the_manifest_count_as_spent() -> None:
    camp = campaign()
    old = make_job("hero", "en-US", "16:9", prompt="an older prompt")
    report = _report(camp, records=[make_record(old, JobState.DONE), *camp.records])
    assert (report.totals.superseded_jobs, report.totals.superseded_usd) == (1, Decimal("1.00"))
    assert report.totals.usd_spent == Decimal("11.00")
    assert len(report.rows) == 18


def test_the_latest_record_of_a_key_wins() -> None:
    camp = campaign()
    job = camp.jobs["outro/en-US/16x9"]
    records = [*camp.records, make_record(job, JobState.SUBMITTED), make_record(job, JobState.DONE)]
    assert {r.label: r.state for r in _report(camp, records=records).rows}[job.label] == "done"


def test_run_window_given_wins_over_the_ledger_span() -> None:
    assert _report().duration_seconds == 100  # 10:00:00 created .. 10:01:40 last update
    report = _report(started_at="2026-04-19T09:00:00Z", finished_at="2026-04-19T09:30:00+00:00")
    assert (report.started_at, report.finished_at, report.duration_seconds) == (
        "2026-04-19T09:00:00Z", "2026-04-19T09:30:00Z", 1800)


def test_render_time_is_submit_to_finish() -> None:
    rows = {row.label: row for row in _report().rows}
    assert rows["hero/en-US/16x9"].render_seconds == 90
    assert rows["outro/en-US/16x9"].render_seconds is None


# --- links -------------------------------------------------------------------------------------

def test_videos_are_linked_relative_to_the_report_folder(written: ReportPaths) -> None:
    rows = {row.label: row for row in written.report.rows}
    assert rows["hero/en-US/16x9"].href == "../../renders/spring/hero/en-US/16x9.mp4"
    assert rows["hero/en-US/16x9"].video == "renders/spring/hero/en-US/16x9.mp4"
    assert rows["product/fr-FR/16x9"].href is None  # "done" in the ledger, but no file on disk
    html = written.html.read_text(encoding="utf-8")
    assert 'data-video="../../renders/spring/hero/en-US/16x9.mp4"' in html


def test_absolute_folders_give_the_same_relative_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    camp = campaign()
    lay_out_files(tmp_path, camp)
    paths = write_reports(camp.plan, camp.records, out_dir=tmp_path / "out" / "r", output_dir=tmp_path / "renders",
                          manifest_sha256="", step_summary=False)
    assert {r.label: r.href for r in paths.report.rows}["hero/en-US/16x9"] == "../../renders/spring/hero/en-US/16x9.mp4"


def test_links_are_percent_encoded_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    monkeypatch.chdir(tmp_path)
    job = replace(make_job("hero", "en-US", "16:9"), output_path="spring/take #1?.mp4")
    Path("renders/spring").mkdir(parents=True)
    Path("renders/spring/take #1?.mp4").write_bytes(b"x")
    records = [make_record(job, JobState.DONE)]
    plan = make_plan(price_jobs([job], CATALOG), records, manifest_path=Path("m.yaml"), catalog=CATALOG,
                     budget_usd=None)
    paths = write_reports(plan, records, out_dir=Path("reports/spring"), manifest_sha256="", step_summary=False)
    assert paths.report.rows[0].href == "../../renders/spring/take%20%231%3F.mp4"
    assert paths.report.rows[0].video == "renders/spring/take #1?.mp4"


def test_a_changed_job_never_shows_the_old_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    old, new = make_job("hero", "en-US", "16:9", prompt="v1"), make_job("hero", "en-US", "16:9", prompt="v2")
    Path("renders", old.output_path).parent.mkdir(parents=True)
    Path("renders", old.output_path).write_bytes(b"the v1 render")
    records = [make_record(old, JobState.DONE)]
    plan = make_plan(price_jobs([new], CATALOG), records, manifest_path=Path("m.yaml"), catalog=CATALOG,
                     budget_usd=None)
    row = write_reports(plan, records, out_dir=Path("r"), manifest_sha256="", step_summary=False).report.rows[0]
    assert (row.state, row.change, row.href) == ("planned", "changed", None)


# --- redaction, in every format -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["report.html", "report.csv", "report.json", "junit.xml", "summary.md"])
def test_secrets_signed_urls_and_private_prompts_never_reach_a_report(written: ReportPaths, name: str) -> None:
    text = (written.folder / name).read_text(encoding="utf-8-sig")
    for secret in (API_KEY, "topsecret123", "X-Signature", "token=abc123", PRIVATE_PROMPT, "X9 reveal"):
        assert secret not in text, f"{secret!r} leaked into {name}"


@pytest.mark.parametrize("name", ["report.html", "report.csv", "report.json"])
def test_redacted_values_still_say_where_they_came_from(written: ReportPaths, name: str) -> None:
    text = (written.folder / name).read_text(encoding="utf-8-sig")
    assert "https://ref.example.com/mood?REDACTED" in text
    assert SHOWN_FOR_PRIVATE in text


@pytest.mark.parametrize(("url", "shown"), [
    ("https://cdn.example.com/v.mp4?sig=1&exp=2", "https://cdn.example.com/v.mp4?REDACTED"),
    ("https://cdn.example.com/v.mp4", "https://cdn.example.com/v.mp4"),
    ("https://user:pw@cdn.example.com:8443/v.mp4", "https://cdn.example.com:8443/v.mp4"),
    ("https://cdn.example.com/v.mp4#access_token=x", "https://cdn.example.com/v.mp4#REDACTED"),
    ("https://cdn.example.com/v.mp4?a=1.", "https://cdn.example.com/v.mp4?REDACTED."),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# --- HTML ---------------------------------------------------------------------------------------

def test_html_escapes_prompts_and_is_self_contained(written: ReportPaths) -> None:
    html = written.html.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "<script>alert(" not in html
    assert html.count("<script") == 1  # the report's own, inline
    for remote in ('src="http', "href=\"http", "@import", "<link"):
        assert remote not in html


def test_html_builds_no_player_until_it_is_on_screen(written: ReportPaths) -> None:
    html = written.html.read_text(encoding="utf-8")
    assert html.count('class="frame player" data-video="../../renders/spring/') == 4
    assert "<video" not in html and " src=" not in html  # the script makes players near the screen
    assert 'video.preload = "metadata"' in html and "video.controls = true" in html


def test_contact_sheet_is_shots_by_combinations_in_manifest_order() -> None:
    (sheet,) = contact_sheets(_report())
    assert sheet.title == "locale × ratio"
    assert [row.shot for row in sheet.rows] == ["hero", "product", "outro"]
    assert [c.title for c in sheet.columns] == [
        "en-US · 16:9", "en-US · 9:16", "fr-FR · 16:9", "fr-FR · 9:16", "ja-JP · 16:9", "ja-JP · 9:16"]
    assert sheet.rows[1].cells[0] == (6,)  # product/en-US/16x9 is the 7th job


def test_shots_with_another_matrix_get_their_own_sheet() -> None:
    from dataclasses import replace

    hero = [make_job("hero", locale, "16:9") for locale in ("en-US", "fr-FR")]
    # A shot without locales; its one axis's value is a mapping, shown by its id.
    packshot = [replace(make_job("pack", "xx", ratio), combination={"placement": {"id": f"feed-{ratio}", "w": 1}})
                for ratio in ("9:16", "1:1")]
    plan = make_plan(price_jobs(hero + packshot, CATALOG), [], manifest_path=Path("m.yaml"), catalog=CATALOG,
                     budget_usd=None)
    report = build_report(plan, [], report_dir="r", output_dir="renders", manifest_sha256="", generated_at=NOON)
    first, second = contact_sheets(report)
    assert (first.title, [r.shot for r in first.rows], len(first.columns)) == ("locale × ratio", ["hero"], 2)
    assert (second.title, [r.shot for r in second.rows]) == ("placement", ["pack"])
    assert [c.title for c in second.columns] == ["feed-9:16", "feed-1:1"]


# --- CSV ----------------------------------------------------------------------------------------

def test_csv_is_rfc4180_utf8_with_bom_and_stable_columns(written: ReportPaths) -> None:
    raw = written.csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.split(b"\r\n", 1)[0].decode("utf-8-sig") == ",".join(CSV_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert len(rows) == 18
    by_label = {row["label"]: row for row in rows}
    # Commas, quotes and a newline survive the round trip; the URL's query does not.
    assert by_label["hero/fr-FR/16x9"]["prompt"] == TRICKY_PROMPT.replace("?token=abc123", "?REDACTED")
    assert by_label["hero/en-US/16x9"]["prompt"] == SCRIPT_PROMPT
    assert '"Slow dolly in, ""golden hour"", rain\non glass' in raw.decode("utf-8-sig")
    assert by_label["hero/en-US/16x9"]["file"] == "renders/spring/hero/en-US/16x9.mp4"
    assert by_label["hero/en-US/16x9"]["cost_usd"] == "1"
    assert by_label["hero/fr-FR/9x16"]["state"] == "failed"


def test_csv_cells_never_start_a_spreadsheet_formula(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    job = make_job("hero", "en-US", "16:9", prompt='=HYPERLINK("http://evil.example","click")')
    plan = make_plan(price_jobs([job], CATALOG), [], manifest_path=Path("m.yaml"), catalog=CATALOG, budget_usd=None)
    paths = write_reports(plan, [], out_dir=Path("r"), manifest_sha256="", step_summary=False)
    row = next(csv.DictReader(io.StringIO(paths.csv.read_text(encoding="utf-8-sig"))))
    assert row["prompt"] == "'" + '=HYPERLINK("http://evil.example","click")'


# --- JSON, JUnit, Markdown -----------------------------------------------------------------------

def test_json_has_header_totals_and_jobs(written: ReportPaths) -> None:
    data = json.loads(written.json.read_text(encoding="utf-8"))
    assert data["schema"] == "seedance-batch/report/1"
    assert data["manifest"] == {"path": "campaign.yaml", "sha256": "ab" * 32}
    assert data["totals"]["usd_spent"] == 10.0 and data["totals"]["usd_planned"] == 18.0
    assert data["totals"]["by_state"]["done"] == 5
    assert len(data["jobs"]) == 18
    first = data["jobs"][0]
    assert (first["label"], first["state"], first["downloaded"]) == ("hero/en-US/16x9", "done", True)
    assert first["file_url"] == "https://cdn.example.com/out/v.mp4?REDACTED"
    assert first["combination"] == {"locale": "en-US", "ratio": "16:9"}


def test_junit_has_one_testcase_per_job_and_problems_fail(written: ReportPaths) -> None:
    root = ET.fromstring(written.junit.read_bytes())
    suite = root.find("testsuite")
    assert suite is not None
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "18", "failures": "3", "errors": "0", "skipped": "10"}
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    failed = cases["hero/fr-FR/9x16"].find("failure")
    assert failed is not None and failed.get("type") == "invalid_request"
    assert failed.get("message") == "content policy: see https://cdn.example.com/out/v.mp4?REDACTED (key REDACTED)"
    assert cases["hero/ja-JP/9x16"].find("failure").get("type") == "timed_out"
    assert list(cases["hero/en-US/16x9"]) == [cases["hero/en-US/16x9"].find("system-out")]
    assert cases["outro/en-US/16x9"].find("skipped").get("message") == "planned: not submitted yet"
    assert cases["hero/en-US/16x9"].get("classname") == "spring.hero"


def test_summary_md_gives_totals_cost_against_budget_and_failures(written: ReportPaths) -> None:
    lines = written.summary.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "### seedance-batch: campaign `spring`"
    assert lines[2] == (
        "**18 jobs**: 5 done · 1 downloading · 1 in flight · 8 planned · 1 timed out · 1 unknown · 1 failed  ")
    assert lines[3] == "**Video**: 25 s rendered of 90 s planned  "
    assert lines[4] == ("**Cost**: $10.00 spent + $8.00 to render = $18.00 of $30.00 budget (within budget) · "
                        "whole campaign at list price $18.00 (3,600 credits) · `fal.ai` would charge $27.22")
    assert "#### Failures (3)" in lines
    assert ("| `hero/fr-FR/9x16` | failed | 3 | `content policy: see "
            "https://cdn.example.com/out/v.mp4?REDACTED (key REDACTED)` |") in lines


def test_summary_md_says_over_budget_and_escapes_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    job = make_job("hero", "en-US", "16:9")
    record = make_record(job, JobState.FAILED, error_message="bad | <b>value</b>\nsecond line")
    plan = make_plan(price_jobs([job], CATALOG), [record], manifest_path=Path("m.yaml"), catalog=CATALOG,
                     budget_usd=Decimal("0.50"))
    text = write_reports(plan, [record], out_dir=Path("r"), manifest_sha256="", step_summary=False).summary.read_text()
    assert "$1.00 spent of $0.50 budget (**OVER budget**)" in text
    assert "| `bad \\| <b>value</b> second line` |" in text  # a code span: shown literally, never HTML


def test_summary_is_appended_to_the_github_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    step = tmp_path / "step.md"
    step.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    camp = campaign()
    paths = write_reports(camp.plan, camp.records, out_dir=Path("r"), manifest_sha256="")
    assert step.read_text() == "earlier step\n" + paths.summary.read_text() + "\n"
    write_reports(camp.plan, camp.records, out_dir=Path("r"), manifest_sha256="", step_summary=False)
    assert step.read_text().count("### seedance-batch") == 1


def test_the_key_in_dotenv_is_scrubbed_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("APIDOT_API_KEY", raising=False)
    Path(".env").write_text("APIDOT_API_KEY=sk-from-dotenv-42\n")
    job = make_job("hero", "en-US", "16:9")
    record = make_record(job, JobState.FAILED, error_message="rejected key sk-from-dotenv-42")
    plan = make_plan(price_jobs([job], CATALOG), [record], manifest_path=Path("m.yaml"), catalog=CATALOG,
                     budget_usd=None)
    paths = write_reports(plan, [record], out_dir=Path("r"), manifest_sha256="", step_summary=False)
    for path in paths.files():
        assert "sk-from-dotenv-42" not in path.read_text(encoding="utf-8-sig")
    assert paths.report.rows[0].error_message == "rejected key REDACTED"


def test_writes_five_files_and_leaves_no_temporaries(written: ReportPaths) -> None:
    assert sorted(p.name for p in written.folder.iterdir()) == [
        "junit.xml", "report.csv", "report.html", "report.json", "summary.md"]


def test_manifest_hash_is_computed_from_the_file_when_not_given(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("campaign.yaml").write_bytes(b"campaign: spring\n")
    camp = campaign()
    paths = write_reports(camp.plan, camp.records, out_dir=Path("r"), step_summary=False)
    assert paths.report.manifest_sha256 == hashlib.sha256(b"campaign: spring\n").hexdigest()


def test_a_signed_url_in_the_matrix_is_redacted_in_the_label_too() -> None:
    signed = "https://cdn.example.com/first.png?token=secret-frame-token"
    job = replace(make_job("hero", "en-US", "16:9"), label=f"hero/{signed}", combination={"frame": signed})
    plan = make_plan(price_jobs([job], CATALOG), [], manifest_path=Path("c.yaml"), catalog=CATALOG, budget_usd=None)
    (row,) = build_report(plan, [], report_dir="r", output_dir="renders", manifest_sha256="",
                          generated_at=NOON).rows
    assert row.label == "hero/https://cdn.example.com/first.png?REDACTED"
    assert row.combination == (("frame", "https://cdn.example.com/first.png?REDACTED"),)


def test_times_read_in_utc_whatever_offset_they_carry() -> None:
    from seedance_batch.report.fmt import when

    assert when("2026-04-19T12:00:05+02:00") == "2026-04-19 10:00:05 UTC"
    assert when("2026-04-19T10:00:05") == "2026-04-19 10:00:05 UTC"  # the ledger writes UTC
    assert when("yesterday") == "yesterday"
