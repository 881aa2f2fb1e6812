"""`seedance-batch report MANIFEST`: the real CLI in a subprocess, over a real SQLite ledger."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_support import run_cli
from report_campaign import SAMPLE_MP4
from seedance_batch.ledger import open_ledger
from seedance_batch.pipeline import load_plan

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = "brightside-launch"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    return tmp_path


def _states(workdir: Path) -> dict[str, str]:
    data = json.loads((workdir / "reports" / CAMPAIGN / "report.json").read_text(encoding="utf-8"))
    return {job["label"]: job["state"] for job in data["jobs"]}


def test_report_from_the_plan_alone_writes_five_files_and_no_ledger(workdir: Path) -> None:
    result = run_cli(workdir, "report", "manifests/ad-localization.yaml")
    assert result.code == 0, result.err
    assert result.out == (
        f"reports/{CAMPAIGN}/report.html (and report.csv, report.json, junit.xml, summary.md): "
        "22 jobs, 0 done, 0 failed/unknown/timed out; "
        "$0.00 spent + $28.84 to render = $28.84 of $60.00 budget (within budget)\n")
    assert sorted(p.name for p in (workdir / "reports" / CAMPAIGN).iterdir()) == [
        "junit.xml", "report.csv", "report.html", "report.json", "summary.md"]
    assert set(_states(workdir).values()) == {"planned"}
    assert not (workdir / ".seedance").exists()  # reading a campaign never creates state


def test_report_mid_run_reads_the_ledger_and_changes_nothing(workdir: Path) -> None:
    ledger_path = workdir / ".seedance" / "ledger.sqlite"
    with open_ledger(ledger_path) as ledger:
        _, plan = load_plan(workdir / "manifests" / "ad-localization.yaml", ledger)
        done, crashed = plan.jobs[0].priced, plan.jobs[1].priced
        for priced in (done, crashed):
            job = priced.job
            ledger.begin_submit(campaign=job.campaign, key=job.key, label=job.label, shot=job.shot,
                                request=job.request, credits=priced.cost.credits, cost_usd=priced.cost.usd,
                                output_path=job.output_path)
        # One job rendered and downloaded; the other's submit never got an answer (a crash).
        ledger.submitted(CAMPAIGN, done.job.key, "task-1", "not_started")
        ledger.finished(CAMPAIGN, done.job.key, "https://files.example/v.mp4?sig=secret")
        target = workdir / "renders" / done.job.output_path
        target.parent.mkdir(parents=True)
        shutil.copyfile(SAMPLE_MP4, target)
        ledger.downloaded(CAMPAIGN, done.job.key, done.job.output_path, target.stat().st_size, "0" * 64)
    result = run_cli(workdir, "report", "manifests/ad-localization.yaml", "--report-dir", "out")
    assert result.code == 0, result.err
    assert result.out.startswith("out/report.html (and report.csv")
    data = json.loads((workdir / "out" / "report.json").read_text(encoding="utf-8"))
    states = {job["label"]: job for job in data["jobs"]}
    assert states[done.job.label]["state"] == "done" and states[done.job.label]["downloaded"]
    assert states[crashed.job.label]["state"] == "submitting"
    assert data["totals"]["usd_spent"] == float(done.cost.usd + crashed.cost.usd)
    assert "sig=secret" not in (workdir / "out" / "report.html").read_text(encoding="utf-8")
    # The report only reads: recovering the crashed submit is the next run's job.
    with open_ledger(ledger_path) as ledger:
        assert ledger.record(CAMPAIGN, crashed.job.key).state.value == "submitting"


def test_plan_report_over_budget_writes_the_summary_then_exits_3(workdir: Path) -> None:
    result = run_cli(workdir, "plan", "manifests/ad-localization.yaml", "--report", "--max-usd", "10", "--json")
    assert result.code == 3
    assert json.loads(result.out)["within_budget"] is False  # stdout stays one JSON object
    summary = (workdir / "reports" / CAMPAIGN / "summary.md").read_text(encoding="utf-8")
    assert "$0.00 spent + $28.84 to render = $28.84 of $10.00 budget (**OVER budget**)" in summary
    assert result.err.splitlines()[0].endswith("(OVER budget)")


def test_report_of_a_missing_manifest_is_one_line_and_exit_2(workdir: Path) -> None:
    result = run_cli(workdir, "report", "manifests/nope.yaml")
    assert result.code == 2
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "nope.yaml" in result.err


def test_report_dir_that_is_a_file_is_one_line_and_exit_2(workdir: Path) -> None:
    (workdir / "taken").write_text("not a folder", encoding="utf-8")
    result = run_cli(workdir, "report", "manifests/ad-localization.yaml", "--report-dir", "taken")
    assert result.code == 2
    assert result.err == (
        "taken: cannot write the reports there: a file of that name is in the way (a folder is needed); "
        "pick a folder you can write with --report-dir DIR\n")


def test_unwritable_step_summary_is_one_line_and_exit_2(workdir: Path) -> None:
    result = run_cli(workdir, "report", "manifests/ad-localization.yaml",
                     env={"GITHUB_STEP_SUMMARY": str(workdir / "gone" / "summary.md")})
    assert result.code == 2
    assert result.err == (
        f"{workdir / 'gone' / 'summary.md'}: cannot append summary.md to $GITHUB_STEP_SUMMARY: "
        "no such file or directory; unset it outside GitHub Actions\n")
    assert (workdir / "reports" / CAMPAIGN / "summary.md").is_file()  # the reports themselves are written


TINY = """\
version: 1
name: tiny
defaults: {model: seedance-2-fast, resolution: 480p, duration: 4}
shots:
  - id: keep
    prompt: a cat on a windowsill
{old}budget: {max_usd: 0.50}
"""
OLD_SHOT = "  - id: old\n    prompt: a dog on a porch\n"


def _spend_on_a_shot_then_drop_it(tmp_path: Path) -> Path:
    """A campaign that paid $0.28 for shot "old", whose manifest no longer has it."""
    manifest = tmp_path / "tiny.yaml"
    manifest.write_text(TINY.replace("{old}", OLD_SHOT), encoding="utf-8")
    with open_ledger(tmp_path / ".seedance" / "ledger.sqlite") as ledger:
        _, plan = load_plan(manifest, ledger)
        old = next(p.priced for p in plan.jobs if p.priced.job.shot == "old")
        job = old.job
        ledger.begin_submit(campaign=job.campaign, key=job.key, label=job.label, shot=job.shot, request=job.request,
                            credits=old.cost.credits, cost_usd=old.cost.usd, output_path=job.output_path)
        ledger.submitted(job.campaign, job.key, "task-old", "not_started")
    manifest.write_text(TINY.replace("{old}", ""), encoding="utf-8")
    return manifest


def test_plan_report_counts_spending_on_dropped_shots_like_the_budget_check(tmp_path: Path) -> None:
    _spend_on_a_shot_then_drop_it(tmp_path)
    result = run_cli(tmp_path, "plan", "tiny.yaml", "--report")
    assert result.code == 3  # $0.28 spent + $0.28 to render is over $0.50
    summary = (tmp_path / "reports" / "tiny" / "summary.md").read_text(encoding="utf-8")
    assert "$0.28 spent + $0.28 to render = $0.56 of $0.50 budget (**OVER budget**)" in summary


def test_run_report_counts_spending_on_dropped_shots(tmp_path: Path) -> None:
    _spend_on_a_shot_then_drop_it(tmp_path)
    result = run_cli(tmp_path, "run", "tiny.yaml", "--simulate", "--max-usd", "1")
    assert result.code == 0, result.err
    totals = json.loads((tmp_path / "reports" / "tiny" / "report.json").read_text(encoding="utf-8"))["totals"]
    assert (totals["usd_spent"], totals["superseded_jobs"], totals["superseded_usd"]) == (0.56, 1, 0.28)


def test_a_dotenv_that_is_not_utf8_is_one_line_and_exit_2(workdir: Path) -> None:
    (workdir / ".env").write_bytes(b"APIDOT_API_KEY=\xff\xfe\n")
    result = run_cli(workdir, "report", "manifests/ad-localization.yaml")
    assert result.code == 2
    assert result.err == ".env: cannot read it: it is not UTF-8 text; fix or remove the file\n"
