"""`seedance-batch run` and `status` as real subprocesses against the simulator over loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import Project
from engine_support import ALL_END
from seedance_batch.simulator import Faults, SimulatorConfig, run_simulator

SCALE = 0.004
CANARY = "sk-sim-CANARY-4e1d9b7c2a"
MANIFEST = """\
version: 1
name: tiny
defaults:
  model: seedance-2-fast
  resolution: 480p
  duration: 4
matrix:
  n: [a, b, c, d, e]
shots:
  - id: s
    prompt: "shot {{ n }}"
budget:
  max_usd: 10
run:
  submits_per_minute: 6
"""


@pytest.fixture
def project(project: Project) -> Project:
    """The shared project folder (tests/conftest.py), with the tiny manifest in it."""
    project.write("m.yaml", MANIFEST)
    return project


def every_byte(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_canary_key_never_appears_anywhere(project: Project) -> None:
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END)) as sim:
        env = {"APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": CANARY}
        done = project.run("run", "m.yaml", "--time-scale", str(SCALE), env=env)
        status = project.run("status", "m.yaml", "--json", env=env)
    done.assert_success()
    assert "tiny: 5 done; submitted 5 this run" in done.out
    outputs = done.out + done.err + status.out + status.err
    assert CANARY not in outputs
    assert (project.path / ".seedance" / "ledger.sqlite").exists()
    assert CANARY.encode() not in every_byte(project.path / ".seedance")
    assert (project.path / "reports" / "tiny" / "report.html").exists()
    assert CANARY.encode() not in every_byte(project.path / "reports")
    view = json.loads(status.out)
    assert view["totals"] == {"done": 5}
    assert all(row["task_id"] and row["file"].startswith("renders/tiny/") for row in view["jobs"])


def test_rejected_canary_key_is_not_echoed_and_exits_4(project: Project) -> None:
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END, api_key="sk-sim-another-key")) as sim:
        env = {"APIDOT_BASE_URL": sim.base_url}
        (project.path / ".env").write_text(f"APIDOT_API_KEY={CANARY}\n")  # read from .env, too
        done = project.run("run", "m.yaml", "--time-scale", str(SCALE), env=env)
    done.assert_failed(4)
    assert CANARY not in done.out + done.err
    assert "submit: HTTP 401" in done.err and "check APIDOT_API_KEY (environment or .env)" in done.err
    assert CANARY.encode() not in every_byte(project.path / ".seedance")


def test_missing_key_is_a_usage_error_naming_the_variable(project: Project) -> None:
    project.run("run", "m.yaml").assert_failed(2).assert_out_err("", (
        "error: APIDOT_API_KEY is not set; export APIDOT_API_KEY=... or put it in a .env file here; "
        "or try --simulate (free, local)\n"))
    assert not (project.path / ".seedance").exists()


def test_over_budget_plan_is_refused_with_exit_3_and_nothing_submitted(project: Project) -> None:
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END)) as sim:
        env = {"APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": "sk-sim-x"}
        done = project.run("run", "m.yaml", "--max-usd", "0.5", "--time-scale", str(SCALE), env=env)
        assert sim.stats()["submits"]["requests"] == 0
    assert done.code == 3
    assert "over the budget of $0.50" in done.err


def test_simulate_runs_with_no_key_and_a_second_run_does_nothing(project: Project) -> None:
    first = project.run("run", "m.yaml", "--simulate")
    assert first.code == 0, first.err
    assert len(list((project.path / "renders").rglob("*.mp4"))) == 5
    second = project.run("run", "m.yaml", "--simulate")
    assert second.code == 0
    assert "submitted 0 this run" in second.out
    table = project.run("status", "m.yaml")
    assert table.code == 0 and "5 done; spent $1.40" in table.out


@pytest.mark.parametrize(("content", "message"), [
    (b"APIDOT_API_KEY=sk-x\n\nAPIDOT_BASE_URL=\"http://unterminated\n",
     ".env:3: cannot parse this line (expected NAME=value); fix or remove it"),
    (b"just some words\n", ".env:1: cannot parse this line (expected NAME=value); fix or remove it"),
    (b"APIDOT_API_KEY=\xff\xfe\n", ".env: cannot read it: it is not UTF-8 text; fix or remove the file"),
])
def test_a_dotenv_with_junk_is_one_line_naming_it(project: Project, content: bytes, message: str) -> None:
    (project.path / ".env").write_bytes(content)
    done = project.run("run", "m.yaml")
    assert (done.code, done.err.strip()) == (2, message)
    assert not (project.path / ".seedance").exists()


def test_a_dotenv_is_read_as_python_dotenv_reads_it(tmp_path: Path) -> None:
    from seedance_batch.environment import credentials

    (tmp_path / ".env").write_text("# keys\nexport APIDOT_API_KEY='sk-quoted'\nAPIDOT_BASE_URL=\n")
    assert credentials({}, tmp_path) == ("https://api.apidot.ai", "sk-quoted")
    assert credentials({"APIDOT_API_KEY": "sk-env"}, tmp_path)[1] == "sk-env"


@pytest.mark.parametrize(("listen", "message"), [
    ("8787", "error: --listen must be HOST:PORT (a port up to 65535) or off, got '8787'"),
    ("localhost:99999", "error: --listen must be HOST:PORT (a port up to 65535) or off, got 'localhost:99999'"),
    ("no-such-host.invalid:8787", "error: cannot listen on --listen no-such-host.invalid:8787: "),
])
def test_a_bad_listen_is_one_line_and_exit_2_before_anything_is_sent(project: Project, listen: str,
                                                                     message: str) -> None:
    (project.path / "m.yaml").write_text(MANIFEST + "  callback_url: https://hooks.example.com/apidot\n")
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=ALL_END)) as sim:
        env = {"APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": "sk-sim-x"}
        done = project.run("run", "m.yaml", "--listen", listen, "--time-scale", str(SCALE), env=env)
        assert sim.stats()["submits"]["requests"] == 0
    assert done.code == 2
    assert done.err.startswith(message) and done.err.count("\n") == 1, done.err


def test_an_output_dir_that_cannot_be_written_is_refused_before_anything_is_paid(project: Project) -> None:
    (project.path / "m.yaml").write_text(MANIFEST + "output:\n  dir: blocker/renders\n")
    (project.path / "blocker").write_text("a file where a folder should be")
    done = project.run("run", "m.yaml", "--simulate")
    assert (done.code, done.err) == (2, (
        "m.yaml:17:8: output.dir: cannot write videos under blocker/renders: Not a directory; "
        "make the folder writable or point output.dir elsewhere\n"))
    assert "submitted" not in done.out


def test_a_report_dir_that_cannot_be_written_is_refused_before_anything_is_paid(project: Project) -> None:
    (project.path / "taken").write_text("a file where the reports should go")
    done = project.run("run", "m.yaml", "--simulate", "--report-dir", "taken")
    assert (done.code, done.err) == (2, (
        "error: cannot write reports under taken: File exists; make it writable or pass another --report-dir\n"))
    assert "submitted" not in done.out
    assert not list(project.path.rglob("*.mp4"))


def test_retries_are_told_on_the_progress_lines_only(project: Project) -> None:
    # The CLI sets stamina's instrumentation (the application owns logging): no second,
    # unscrubbed account of each retry on stderr.
    faults = Faults(seed=3, task_stuck=0, on=frozenset({"submit"}), server_error=0.5)
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=faults)) as sim:
        env = {"APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": "sk-sim-x"}
        done = project.run("run", "m.yaml", "--time-scale", str(SCALE), env=env).assert_success()
        assert sim.stats()["faults"]["server_error"] > 0
    assert ": retry (submit: HTTP 5" in done.err
    assert "stamina" not in done.err
