"""`plan --diff` and `--only` as a user runs them: the real CLI in a subprocess, a real SQLite ledger."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_support import Outcome, run_cli
from seedance_batch.ledger import open_ledger
from seedance_batch.pipeline import load_plan

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "manifests/ad-localization.yaml"
CAMPAIGN = "brightside-launch"


def render_everything(folder: Path, manifest: str) -> None:
    """Record every job of ``manifest`` in the ledger as rendered, downloaded and verified (what a run leaves)."""
    with open_ledger(folder / ".seedance" / "ledger.sqlite") as ledger:
        _, plan = load_plan(folder / manifest, ledger)
        for planned in plan.jobs:
            job, cost = planned.priced.job, planned.priced.cost
            ledger.begin_submit(campaign=job.campaign, key=job.key, label=job.label, shot=job.shot,
                                request=job.request, credits=cost.credits, cost_usd=cost.usd,
                                output_path=job.output_path)
            ledger.submitted(job.campaign, job.key, f"task-{job.key[:8]}", "not_started")
            ledger.finished(job.campaign, job.key, "https://files.example/v.mp4")
            ledger.downloaded(job.campaign, job.key, job.output_path, 1024, "0" * 64)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def plan(folder: Path, *args: str) -> Outcome:
    return run_cli(folder, "plan", *args)


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    """The example campaign, rendered once, in a folder of its own."""
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    render_everything(tmp_path, EXAMPLE)
    return tmp_path


def _block(out: str) -> str:
    """The --diff block of plan's output: from "Changes:" to the summary's "Jobs:" line."""
    return out[out.index("Changes:"):out.index("\nJobs:")]


def test_one_template_edit_reads_once_with_its_words_and_cost(rendered: Path) -> None:
    edit(rendered / EXAMPLE, "Slow push-in,", "Slow dolly-in,")
    done = plan(rendered, EXAMPLE, "--diff")
    done.assert_success()
    assert _block(done.out) == (
        "Changes: 11 changed job(s) in 1 group(s), 0 removed\n"
        "~ hero/en-US/9:16 and 10 more job(s)\n"
        "    prompt: … the glass. Slow [-push-in-]{+dolly-in+}, warm morning light, …\n"
        "    cost: $19.40 for 11 new renders; the old renders cost $19.40 (11 done)")
    assert "Jobs: 11 changed, 11 done.\n" in done.out
    # Without --diff: the counts, and where to look.
    plain = plan(rendered, EXAMPLE).assert_success()
    assert "Changes:" not in plain.out
    assert "Jobs: 11 changed, 11 done. (plan --diff shows what changed)\n" in plain.out


def test_plan_json_carries_each_changed_jobs_fields_and_the_removed_jobs(rendered: Path) -> None:
    edit(rendered / EXAMPLE, "Slow push-in,", "Slow dolly-in,")
    edit(rendered / EXAMPLE, "    resolution: 480p", "    resolution: 720p")
    csv = rendered / "manifests" / "locales.csv"
    csv.write_text("".join(line for line in csv.read_text().splitlines(True) if not line.startswith("de-DE")))
    data = json.loads(plan(rendered, EXAMPLE, "--json").assert_success().out)
    jobs = {job["label"]: job for job in data["jobs"]}
    [prompt] = jobs["hero/fr-FR/9:16"]["changes"]
    assert prompt["field"] == "prompt" and not prompt["private"]
    assert "Slow push-in," in prompt["old"] and "Slow dolly-in," in prompt["new"]
    assert prompt["diff"] == "prompt: … the glass. Slow [-push-in-]{+dolly-in+}, warm morning light, …"
    assert jobs["street/ja-JP/9:16"]["changes"] == [
        {"field": "resolution", "private": False, "old": "480p", "new": "720p", "diff": "resolution: 480p -> 720p"}]
    assert jobs["product/1:1"]["changes"] == []  # done: nothing changed
    assert [(r["label"], r["state"], r["spent_usd"]) for r in data["removed"]] == [
        ("hero/de-DE/9:16", "done", 1.4), ("hero/de-DE/16:9", "done", 1.4),
        ("street/de-DE/9:16", "done", 0.8), ("street/de-DE/16:9", "done", 0.8)]
    assert data["selection"] is None
    # The same in words, and the ledger keeps the removed jobs.
    done = plan(rendered, EXAMPLE, "--diff").assert_success()
    assert "- hero/de-DE/9:16 (done, $1.40 spent): no longer in the manifest; kept in the ledger\n" in done.out
    assert "    resolution: 480p -> 720p\n" in done.out
    assert ("4 job(s) rendered before are no longer in the manifest (removed): the ledger keeps them, "
            "nothing is deleted.") in done.out


def test_the_pull_request_summary_shows_the_changes(rendered: Path) -> None:
    edit(rendered / EXAMPLE, "Slow push-in,", "Slow dolly-in,")
    plan(rendered, EXAMPLE, "--report").assert_success()
    summary = (rendered / "reports" / CAMPAIGN / "summary.md").read_text(encoding="utf-8")
    assert (
        "#### Changes (11 changed, 0 removed)\n\n"
        "- `hero/en-US/9:16` and 10 more job(s): $19.40 for 11 new renders; the old renders cost $19.40 (11 done)\n"
        "  - `prompt: … the glass. Slow [-push-in-]{+dolly-in+}, warm morning light, …`\n") in summary


PRIVATE = """\
version: 1
name: secretive
defaults: {model: seedance-2-fast, resolution: 480p, duration: 4}
shots:
  - id: teaser
    private: true
    prompt: the NIGHTJAR phone rises from the sea
  - id: frame
    prompt: a phone on a desk, slow push-in
    image_urls: ["https://media.example/first.png?X-Amz-Signature=OLDSIGNATURE"]
"""


def test_private_prompts_and_signed_urls_stay_hidden_in_every_diff(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(PRIVATE, encoding="utf-8")
    render_everything(tmp_path, "m.yaml")
    edit(tmp_path / "m.yaml", "NIGHTJAR", "KESTREL")
    edit(tmp_path / "m.yaml", "OLDSIGNATURE", "NEWSIGNATURE")
    edit(tmp_path / "m.yaml", "slow push-in", "slow pull-out")
    shown = plan(tmp_path, "m.yaml", "--diff", "--report").assert_success().out
    summary = (tmp_path / "reports" / "secretive" / "summary.md").read_text(encoding="utf-8")
    changes = [c for job in json.loads(plan(tmp_path, "m.yaml", "--json").out)["jobs"] for c in job["changes"]]
    assert "    prompt changed (private)\n" in shown
    assert "  - prompt changed (private)\n" in summary
    assert {"field": "prompt", "private": True, "diff": "prompt changed (private)"} in changes
    assert "    prompt: a phone on a desk, slow [-push-in-]{+pull-out+}\n" in shown
    assert "image_urls changed (in a part not shown, such as a URL's query string)" in shown
    for text in (shown, summary, json.dumps([c for c in changes if c["private"]])):
        for secret in ("NIGHTJAR", "KESTREL"):
            assert secret not in text
    for text in (shown, summary):
        assert "SIGNATURE" not in text


# --- --only ----------------------------------------------------------------------------------


def test_only_plans_a_subset_and_the_budget_and_exit_code_cover_it(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    whole = plan(tmp_path, EXAMPLE, "--max-usd", "10").assert_failed(3)
    assert "plan costs $28.84, over the budget of $10.00" in whole.err
    hero = plan(tmp_path, EXAMPLE, "--max-usd", "10", "--only", "hero/*").assert_failed(3)
    assert "plan costs $19.40, over the budget of $10.00" in hero.err
    street = plan(tmp_path, EXAMPLE, "--max-usd", "10", "--only", "street/*").assert_success()
    assert ("9 of 22 jobs selected by --only 'street/*': the plan, its cost and the budget check cover only "
            "them.\n") in street.out
    assert "This run would submit 9 job(s) for 1,440 credits = $7.20" in street.out
    two = json.loads(plan(tmp_path, EXAMPLE, "--json", "--only", "*/de-DE/*", "--only", "product").out)
    assert [job["label"] for job in two["jobs"]] == [
        "hero/de-DE/9:16", "hero/de-DE/16:9", "product/9:16", "product/1:1", "street/de-DE/9:16",
        "street/de-DE/16:9"]
    assert two["selection"] == {"only": ["*/de-DE/*", "product"], "jobs": 6, "of": 22}


def test_a_pattern_that_matches_nothing_is_exit_2_with_the_nearest_labels(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    for command in ("plan", "status", "report", "run"):
        extra = ("--simulate",) if command == "run" else ("--only", "hero/*")  # a pattern that matches is fine
        done = run_cli(tmp_path, command, EXAMPLE, "--only", "street/ja-JP/16:9", *extra).assert_failed(2)
        assert done.err == ("error: --only street/ja-JP/16:9 matches no job of the manifest; nearest labels: "
                            "street/ja-JP/9:16, street/en-US/16:9, street/de-DE/16:9\n"), command
        if command != "run":  # the commands that only look create nothing
            assert not (tmp_path / ".seedance").exists() and not (tmp_path / "reports").exists()
    with open_ledger(tmp_path / ".seedance" / "ledger.sqlite") as ledger:  # run opened it: nothing in it
        assert list(ledger.records(CAMPAIGN)) == []
    assert not (tmp_path / "reports").exists()


TINY = """\
version: 1
name: tiny
defaults: {model: seedance-2-fast, resolution: 480p, duration: 4}
matrix:
  market: [de-DE, ja-JP, en-US]
shots:
  - id: s
    prompt: "shot for {{ market }}"
budget: {max_usd: 5}
"""


def test_run_status_and_report_with_only_cover_the_selection(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(TINY, encoding="utf-8")
    done = run_cli(tmp_path, "run", "m.yaml", "--simulate", "--only", "*/ja-JP").assert_success()
    assert done.out.startswith("1 of 3 jobs selected by --only '*/ja-JP': ")
    assert "tiny: 1 done; submitted 1 this run" in done.out
    assert [p.name for p in (tmp_path / "renders").rglob("*.mp4")] == ["s_ja-JP.mp4"]
    status = json.loads(run_cli(tmp_path, "status", "m.yaml", "--json", "--only", "s/ja-JP").out)
    assert [(job["label"], job["state"]) for job in status["jobs"]] == [("s/ja-JP", "done")]
    assert status["selection"] == {"only": ["s/ja-JP"], "jobs": 1, "of": 3}
    everything = json.loads(run_cli(tmp_path, "status", "m.yaml", "--json").out)
    assert everything["totals"] == {"planned": 2, "done": 1}
    # The report of the other two: the spend of the one outside is the campaign's, and not "superseded".
    run_cli(tmp_path, "report", "m.yaml", "--only", "s/de-DE", "--only", "s/en-US").assert_success()
    data = json.loads((tmp_path / "reports" / "tiny" / "report.json").read_text(encoding="utf-8"))
    assert data["selection"] == "2 of 3 jobs selected by --only s/de-DE --only s/en-US"
    totals = data["totals"]
    assert (totals["jobs"], totals["usd_spent"], totals["usd_to_render"], totals["superseded_jobs"]) == (
        2, 0.28, 0.56, 0)
    summary = (tmp_path / "reports" / "tiny" / "summary.md").read_text(encoding="utf-8")
    assert "**Selection**: `2 of 3 jobs selected by --only s/de-DE --only s/en-US`  \n" in summary
    # A run without --only renders the rest, and nothing twice.
    rest = run_cli(tmp_path, "run", "m.yaml", "--simulate").assert_success()
    assert "tiny: 3 done; submitted 2 this run" in rest.out
