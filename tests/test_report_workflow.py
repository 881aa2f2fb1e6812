"""The CI recipe (.github/workflows/render.yml): valid per GitHub's workflow schema, and
doing what the README says it does.

actionlint's PyPI wrapper cannot build here, so the real check is check-jsonschema
with its bundled ``vendor.github-workflows`` schema (the one SchemaStore publishes),
run as the CLI people run; a broken copy proves the check bites.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "render.yml"


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    command = shutil.which("check-jsonschema")
    args = [command] if command else [sys.executable, "-m", "check_jsonschema"]
    return subprocess.run([*args, "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _steps(workflow: dict[Any, Any], job: str) -> list[dict[str, Any]]:
    return workflow["jobs"][job]["steps"]


def _run_lines(workflow: dict[Any, Any], job: str) -> str:
    return "\n".join(step.get("run", "") for step in _steps(workflow, job))


def test_workflow_passes_the_github_workflow_schema() -> None:
    result = _lint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "render.yml"
    broken.write_text(WORKFLOW.read_text(encoding="utf-8").replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest"))
    result = _lint(broken)
    assert result.returncode == 1
    assert "runs_on" in result.stdout or "runs-on" in result.stdout


def test_pull_requests_validate_and_plan_and_post_the_summary(workflow: dict[Any, Any]) -> None:
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"pull_request", "push", "workflow_dispatch"} <= set(triggers)
    assert "labeled" in triggers["pull_request"]["types"]
    assert triggers["push"]["branches"] == ["main"]
    run = _run_lines(workflow, "plan")
    assert 'seedance-batch validate "$MANIFEST"' in run
    assert 'seedance-batch plan "$MANIFEST" --report' in run
    assert re.search(r"gh pr comment .*--body-file \"\$summary\"", run)
    post = next(s for s in _steps(workflow, "plan") if s.get("name") == "Post the plan on the pull request")
    assert post["if"].startswith("always()")  # posted when the plan fails on budget too
    assert workflow["jobs"]["plan"]["permissions"]["pull-requests"] == "write"
    plan = workflow["jobs"]["plan"]
    assert "APIDOT_API_KEY" not in yaml.safe_dump(plan)  # no key where nothing is spent
    # the plan reads the shared ledger (what main rendered already), else main's cached one
    step = next(s for s in _steps(workflow, "plan") if s.get("name") == "Plan")
    assert step["env"] == {"SEEDANCE_STATE": "${{ secrets.SEEDANCE_STATE }}"}
    restore = next(s for s in _steps(workflow, "plan") if s.get("name") == "Restore the ledger")
    assert restore["if"] == "needs.setup.outputs.shared != 'true'" and plan["needs"] == ["setup"]


def test_render_runs_on_main_or_a_label_with_the_key_from_a_secret(workflow: dict[Any, Any]) -> None:
    job = workflow["jobs"]["render"]
    assert "github.event_name == 'push'" in job["if"]
    assert "contains(github.event.pull_request.labels.*.name, 'render')" in job["if"]
    assert "!cancelled()" in job["if"]
    # a pull request renders only after its plan, and only on the shared ledger
    assert ("(needs.plan.result == 'success' && needs.setup.outputs.shared == 'true' && contains("
            in job["if"])
    # a dispatch off main, only on the shared ledger (a branch's cache would pay again on main)
    assert ("(github.event_name == 'workflow_dispatch' && (needs.setup.outputs.shared == 'true' || "
            "github.ref == 'refs/heads/main'))") in job["if"]
    render = next(s for s in job["steps"] if s.get("name") == "Render")
    assert render["run"] == 'seedance-batch run "$MANIFEST"'
    assert render["env"] == {"APIDOT_API_KEY": "${{ secrets.APIDOT_API_KEY }}",
                             "SEEDANCE_STATE": "${{ secrets.SEEDANCE_STATE }}"}
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_renders_run_as_a_matrix_of_runners_on_the_shared_ledger(workflow: dict[Any, Any]) -> None:
    job = workflow["jobs"]["render"]
    assert job["strategy"] == {"fail-fast": False, "matrix": {"runner": "${{ fromJSON(needs.setup.outputs.runners) }}"}}
    triggers = workflow.get("on", workflow.get(True))
    assert triggers["workflow_dispatch"]["inputs"]["runners"]["default"] == "2"
    setup = workflow["jobs"]["setup"]
    assert setup["outputs"] == {"shared": "${{ steps.ledger.outputs.shared }}",
                                "runners": "${{ steps.ledger.outputs.runners }}"}
    assert setup["steps"][0]["env"]["SEEDANCE_STATE"] == "${{ secrets.SEEDANCE_STATE }}"


def _setup(workflow: dict[Any, Any], tmp_path: Path, **env: str) -> tuple[int, dict[str, str], str]:
    """The setup job's script, run by bash as a runner would: its exit code, outputs and log."""
    step = workflow["jobs"]["setup"]["steps"][0]
    outputs = tmp_path / "outputs"
    outputs.write_text("")
    done = subprocess.run(["bash", "-e", "-c", step["run"]], capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(outputs), "SEEDANCE_STATE": "",
                               "RUNNERS": "2", "LABELLED": "false", "GITHUB_EVENT_NAME": "push", **env})
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    return done.returncode, values, done.stdout + done.stderr


def test_the_setup_job_says_where_the_ledger_is_and_how_many_runners(workflow: dict[Any, Any],
                                                                     tmp_path: Path) -> None:
    shared = {"SEEDANCE_STATE": "postgresql://ci@db.example/render"}
    assert _setup(workflow, tmp_path, **shared)[:2] == (0, {"shared": "true", "runners": "[1,2]"})
    assert _setup(workflow, tmp_path, **shared, RUNNERS="4")[:2] == (0, {"shared": "true", "runners": "[1,2,3,4]"})
    for bad in ("0", "x", "21", ""):
        code, _, log = _setup(workflow, tmp_path, **shared, RUNNERS=bad)
        assert code == 2 and "::error::runners must be" in log, bad
    code, values, log = _setup(workflow, tmp_path, RUNNERS="4")
    assert (code, values) == (0, {"shared": "false", "runners": "[1]"})  # the cache: one runner, on main
    assert "::warning::" not in log
    code, values, log = _setup(workflow, tmp_path, GITHUB_EVENT_NAME="pull_request", LABELLED="true")
    assert code == 0 and values["shared"] == "false"
    assert ("::warning::Pull request renders are off without a SEEDANCE_STATE secret: the cache cannot be "
            "trusted with money") in log
    assert "postgresql://" not in _setup(workflow, tmp_path, **shared)[2]  # the URL is never echoed


def test_without_a_shared_ledger_it_is_cached_even_when_a_run_fails(workflow: dict[Any, Any]) -> None:
    steps = _steps(workflow, "render")
    names = [step.get("name") for step in steps]
    restore = steps[names.index("Restore the ledger and the renders")]
    save = steps[names.index("Save the ledger and the renders")]
    assert names.index("Restore the ledger and the renders") < names.index("Render") < names.index(
        "Save the ledger and the renders")
    assert restore["uses"].startswith("actions/cache/restore@") and save["uses"].startswith("actions/cache/save@")
    assert ".seedance/" in restore["with"]["path"] and ".seedance/" in save["with"]["path"]
    assert restore["if"] == "needs.setup.outputs.shared != 'true'"
    assert save["if"] == "always() && needs.setup.outputs.shared != 'true'"
    # Each run saves under a new key; the next restores the newest by prefix.
    prefix = restore["with"]["restore-keys"].splitlines()[0]
    assert save["with"]["key"].startswith(prefix) and "github.run_id" in save["with"]["key"]


def test_each_runner_uploads_its_videos_and_the_last_job_merges_them_and_reports(workflow: dict[Any, Any]) -> None:
    [upload] = [s for s in _steps(workflow, "render") if "upload-artifact" in s.get("uses", "")]
    assert upload["with"]["name"] == "renders-${{ matrix.runner }}" and upload["if"] == "always()"
    report = workflow["jobs"]["report"]
    assert report["needs"] == ["setup", "render"] and report["if"] == "always() && needs.render.result != 'skipped'"
    steps = report["steps"]
    merge = next(s for s in steps if "download-artifact" in s.get("uses", ""))
    assert merge["with"] == {"pattern": "renders-*", "path": "renders/", "merge-multiple": True}
    write = next(s for s in steps if s.get("name") == "Write the reports from the ledger")
    assert write["run"] == 'seedance-batch report "$MANIFEST"'
    assert write["env"] == {"SEEDANCE_STATE": "${{ secrets.SEEDANCE_STATE }}"}
    uploads = {s["with"]["path"]: s for s in steps if "upload-artifact" in s.get("uses", "")}
    assert set(uploads) == {"reports/", "renders/"}
    assert all(step["if"] == "always()" for step in uploads.values())


def test_the_readme_shows_this_very_workflow() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if "## Render from CI" not in readme:
        pytest.skip("README has no 'Render from CI' section yet")
    section = readme.split("## Render from CI", 1)[1]
    shown = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert shown is not None, "the section shows no yaml block"
    assert shown.group(1) == WORKFLOW.read_text(encoding="utf-8")
