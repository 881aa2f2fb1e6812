"""Drafts to finals through the real CLI: the example renders its drafts, --approved promotes what the review approved.

Real processes against the in-process simulator (``--simulate``) and a real SQLite
ledger; the review's decisions are written through the ledger's own ``decide``, as the
review app writes them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from cli_support import Project
from seedance_batch.ledger import DecisionChange, Verdict, open_ledger
from seedance_batch.pipeline import load_plan
from seedance_batch.review.takes import combination_id
from seedance_batch.simulator import SimulatorConfig, run_simulator

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
EXAMPLE = "drafts-to-finals.yaml"


@pytest.fixture
def example(project: Project) -> Project:
    for name in (EXAMPLE, "locales.csv"):
        shutil.copy(MANIFESTS / name, project.path / name)
    return project


def _approve(project: Project, takes: dict[str, bool]) -> None:
    """Approve each take label's draft (picking it when asked), as the review app does."""
    with open_ledger(str(project.path / ".seedance" / "ledger.sqlite")) as ledger:
        _, plan = load_plan(project.path / EXAMPLE, ledger, profile="draft")
        drafts = {planned.priced.job.take_label: planned.priced.job for planned in plan.jobs}
        for take, picked in takes.items():
            job = drafts[take]
            note = "<script>alert(1)</script> warmer" if picked else None  # a hostile note, escaped in reports
            change = DecisionChange(picked=True, note=note) if picked else DecisionChange(verdict=Verdict.APPROVED)
            ledger.decide(job.campaign, job.key, change, label=job.label, combination=combination_id(job),
                          reviewer="ana")


def test_the_example_drafts_then_promotes_only_approved_takes_with_their_seeds(example: Project) -> None:
    drafts = example.run("run", EXAMPLE, "--simulate", timeout=120).assert_success()
    assert "Profile draft (profile:): 66 job(s)." in drafts.out
    assert "brightside-drafts: 66 done; submitted 66 this run; spent $42.00 in total" in drafts.out

    nothing = example.run("run", EXAMPLE, "--profile", "final", "--approved", "--simulate").assert_success()
    assert ("Profile final (--profile): --approved, and no take is approved in the review yet "
            f"(seedance-batch review {EXAMPLE}); nothing to render, nothing is spent.") in nothing.out
    assert "submitted 0 this run; spent $42.00 in total" in nothing.out

    _approve(example, {"hero/de-DE/9:16#1": False, "hero/de-DE/9:16#3": True, "street/ja-JP/9:16#2": False})
    plan = json.loads(example.run("plan", EXAMPLE, "--profile", "final", "--approved", "--json").assert_success().out)
    assert [job["label"] for job in plan["jobs"]] == ["hero/de-DE/9:16#3@final", "street/ja-JP/9:16#2@final"]
    assert plan["profiles"]["approved_only"] and plan["profiles"]["approved_takes"] == 3
    assert plan["total_usd"] == 4.5 + 1.6 and plan["removed"] == []  # the drafts' rows are not "removed"
    draft_of = {job["label"]: job["counterparts"]["draft"]["key"] for job in plan["jobs"]}

    finals = example.run("run", EXAMPLE, "--profile", "final", "--approved", "--simulate").assert_success()
    assert "submitted 2 this run; spent $48.10 in total" in finals.out
    with open_ledger(str(example.path / ".seedance" / "ledger.sqlite"), read_only=True) as ledger:
        rows = {record.key: record for record in ledger.records("brightside-drafts")}
    for final in plan["jobs"]:
        draft = rows[draft_of[final["label"]]]
        assert rows[final["key"]].request["input"]["seed"] == draft.request["input"]["seed"]
        assert rows[final["key"]].request["model"] == "seedance-2"

    report = json.loads((example.path / "reports" / "brightside-drafts" / "report.json").read_text(encoding="utf-8"))
    pick = next(job for job in report["jobs"] if job["label"] == "hero/de-DE/9:16#3@final")
    assert pick["decision"]["verdict"] == "approved" and pick["decision"]["picked"]
    assert pick["counterparts"] == [{"profile": "draft", "label": "hero/de-DE/9:16#3@draft", "downloaded": True,
                                     "file": "renders/brightside-drafts/hero/hero_de-DE_9-16_take3_draft.mp4"}]
    assert pick["decision"]["note"] == "<script>alert(1)</script> warmer"
    html = (example.path / "reports" / "brightside-drafts" / "report.html").read_text(encoding="utf-8")
    assert "final beside the other profiles" in html
    assert 'href="../../renders/brightside-drafts/hero/hero_de-DE_9-16_take3_draft.mp4"' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; warmer" in html and "<script>alert(1)" not in html
    again = example.run("plan", EXAMPLE, "--profile", "final", "--approved").assert_success()
    assert "Jobs: 2 done." in again.out


def test_a_plan_of_the_finals_shows_both_costs_and_what_promotion_would_cost(example: Project) -> None:
    example.run("run", EXAMPLE, "--simulate", "--only", "product", timeout=120).assert_success()
    _approve(example, {"product/9:16#1": False, "product/1:1#2": False})
    out = example.run("plan", EXAMPLE, "--profile", "final", "--compare", "draft", env={"COLUMNS": "200"}).out
    assert "Plan for campaign brightside-drafts, profile final" in out and "draft USD" in out
    assert "Each profile in full: draft 66 job(s) = $42.00; final (in force) 66 job(s) = $216.00." in out
    assert "Review: 2 take(s) approved, 0 picked; --approved would plan 2 of them for $7.20 in final." in out
    status = json.loads(example.run("status", EXAMPLE, "--json").assert_success().out)
    assert {job["label"].rsplit("@", 1)[1] for job in status["jobs"]} == {job["profile"] for job in status["jobs"]} == {"draft"}
    assert [job["take"] for job in status["jobs"][:3]] == [1, 2, 3]


@pytest.mark.parametrize(("args", "message"), [
    (("plan", EXAMPLE, "--profile", "fianl"),
     "error: --profile 'fianl' is not a profile of the manifest (did you mean 'final'?); profiles: draft, final\n"),
    (("status", EXAMPLE, "--profile", "x"), "error: --profile 'x' is not a profile of the manifest; profiles: draft, final\n"),
    (("plan", EXAMPLE, "--compare", "x"), "error: --compare 'x' is not a profile of the manifest; profiles: draft, final\n"),
])
def test_an_unknown_profile_is_exit_2_naming_the_known_ones(example: Project, args: tuple[str, ...], message: str) -> None:
    example.run(*args).assert_failed(2).assert_out_err("", message)


def test_the_simulator_accepts_and_echoes_input_seed() -> None:
    body = {"model": "seedance-2", "input": {"prompt": "a kite", "duration": 5, "resolution": "720p", "seed": 77}}
    with run_simulator(SimulatorConfig(time_scale=0.001)) as sim, \
            httpx.Client(base_url=sim.base_url, headers={"Authorization": "Bearer sk-sim-test"}) as http:
        accepted = http.post("/api/generate/submit", json=body)
        assert accepted.status_code == 200, accepted.text
        data = http.get(f"/api/generate/status/{accepted.json()['data']['task_id']}").json()["data"]
        assert data["seed"] == 77
        refused = http.post("/api/generate/submit", json={**body, "input": {**body["input"], "seed": -1}})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "input.seed: seed -1 is out of range; allowed: 0 to 4294967295"
