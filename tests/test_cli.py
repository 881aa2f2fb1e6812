"""The plan, prices and status commands, run as a user runs them (a real subprocess)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_support import run_cli

REPO = Path(__file__).resolve().parents[1]




def in_folder(workdir: Path) -> dict[str, str]:
    """The ledger inside the test's folder, and room for the plan table."""
    return {"SEEDANCE_STATE": str(workdir / "ledger.sqlite"), "COLUMNS": "200"}


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    return tmp_path


def test_plan_prints_table_and_verdict_and_creates_nothing(workdir: Path) -> None:
    result = run_cli(workdir, "plan", "manifests/ad-localization.yaml", env=in_folder(workdir))
    assert result.code == 0, result.err
    assert "Plan for campaign brightside-launch" in result.out
    assert "Jobs: 22 new." in result.out
    assert "This run would submit 22 job(s) for 5,768 credits = $28.84 (fal.ai would charge $47.17)" in result.out
    assert "Budget $60.00: within budget." in result.out
    assert not (workdir / "ledger.sqlite").exists()
    assert not (workdir / "renders").exists()


def test_plan_json_is_one_object_with_exact_requests(workdir: Path) -> None:
    result = run_cli(workdir, "plan", "--json", "manifests/ad-localization.yaml", env=in_folder(workdir))
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert plan["campaign"] == "brightside-launch"
    assert (plan["total_credits"], plan["total_usd"], plan["budget_usd"], plan["within_budget"]) == (5768, 28.84, 60.0, True)
    assert plan["counts"]["new"] == len(plan["jobs"]) == 22
    assert sum(job["credits"] for job in plan["jobs"]) == plan["total_credits"]
    cinema = next(job for job in plan["jobs"] if job["label"] == "hero/en-US/21:9")
    assert cinema["request"]["model"] == "seedance-2"
    assert cinema["request"]["input"]["resolution"] == "1080p"
    assert set(cinema["request"]) == {"model", "input"}  # no callback_url, nothing else
    assert cinema["credits"] == 90 * 12 and cinema["cost_usd"] == 5.4


def test_plan_over_budget_exits_3_and_says_why(workdir: Path) -> None:
    result = run_cli(workdir, "plan", "--max-usd", "10", "manifests/ad-localization.yaml", env=in_folder(workdir))
    assert result.code == 3
    assert "Budget $10.00: OVER budget." in result.out
    assert result.err.strip() == (
        "error: plan costs $28.84, over the budget of $10.00; raise budget.max_usd or --max-usd, "
        "or render fewer jobs; nothing was submitted"
    )


@pytest.mark.parametrize("amount", ["abc", "-5", "nan"])
def test_bad_max_usd_is_a_usage_error(workdir: Path, amount: str) -> None:
    result = run_cli(workdir, "plan", "--max-usd", amount, "manifests/ad-localization.yaml", env=in_folder(workdir))
    assert result.code == 2
    assert "is not an amount in USD" in result.err
    assert "Traceback" not in result.err


def test_missing_manifest_is_one_line_exit_2(workdir: Path) -> None:
    result = run_cli(workdir, "plan", "manifests/nope.yaml", env=in_folder(workdir))
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    assert "manifests/nope.yaml" in result.err and "Traceback" not in result.err


def test_prices_shows_snapshot_and_a_users_own_file(workdir: Path) -> None:
    result = run_cli(workdir, "prices", env=in_folder(workdir))
    assert result.code == 0
    assert "snapshot 2026-04-19" in result.out
    assert "seedance-2-fast" in result.out and "0.2419" in result.out
    mine = json.loads((REPO / "schemas" / "models.json").read_text())
    mine["snapshot_date"] = "2027-02-02"
    (workdir / "mine.json").write_text(json.dumps(mine))
    assert "snapshot 2027-02-02" in run_cli(workdir, "prices", "--prices", "mine.json", env=in_folder(workdir)).out


def test_status_without_a_ledger_shows_every_job_planned_and_creates_none(workdir: Path) -> None:
    result = run_cli(workdir, "status", "--json", "manifests/ad-localization.yaml", env=in_folder(workdir))
    assert result.code == 0, result.err
    status = json.loads(result.out)
    assert status["totals"] == {"planned": 22}
    assert not (workdir / "ledger.sqlite").exists()
