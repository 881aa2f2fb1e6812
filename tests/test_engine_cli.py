"""`seedance-batch run` and `status` as real subprocesses against the simulator over loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seedance_batch.simulator import SimulatorConfig, run_simulator

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


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("APIDOT_", "SEEDANCE_"))}
    base.update({"CI": "true", **(env or {})})
    return subprocess.run([sys.executable, "-m", "seedance_batch", *args], cwd=cwd, env=base,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "m.yaml").write_text(MANIFEST)
    return tmp_path


def every_byte(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_canary_key_never_appears_anywhere(project: Path) -> None:
    with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        env = {"APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": CANARY}
        done = cli(project, "run", "m.yaml", "--time-scale", str(SCALE), env=env)
        status = cli(project, "status", "m.yaml", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert "tiny: 5 done; submitted 5 this run" in done.stdout
    outputs = done.stdout + done.stderr + status.stdout + status.stderr
    assert CANARY not in outputs
    assert (project / ".seedance" / "ledger.sqlite").exists()
    assert CANARY.encode() not in every_byte(project / ".seedance")
    assert (project / "reports" / "tiny" / "report.html").exists()
    assert CANARY.encode() not in every_byte(project / "reports")
    view = json.loads(status.stdout)
    assert view["totals"] == {"done": 5}
    assert all(row["task_id"] and row["file"].startswith("renders/tiny/") for row in view["jobs"])


def test_rejected_canary_key_is_not_echoed_and_exits_4(project: Path) -> None:
    with run_simulator(SimulatorConfig(time_scale=SCALE, api_key="sk-sim-another-key")) as sim:
        env = {"APIDOT_BASE_URL": sim.base_url}
        (project / ".env").write_text(f"APIDOT_API_KEY={CANARY}\n")  # read from .env, too
        done = cli(project, "run", "m.yaml", "--time-scale", str(SCALE), env=env)
    assert done.returncode == 4
    assert CANARY not in done.stdout + done.stderr
    assert "submit: HTTP 401" in done.stderr and "check APIDOT_API_KEY (environment or .env)" in done.stderr
    assert CANARY.encode() not in every_byte(project / ".seedance")
    assert "Traceback" not in done.stderr


def test_missing_key_is_a_usage_error_naming_the_variable(project: Path) -> None:
    done = cli(project, "run", "m.yaml")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: APIDOT_API_KEY is not set; export APIDOT_API_KEY=... or put it in a .env file here; "
        "or try --simulate (free, local)"
    )
    assert not (project / ".seedance").exists()


def test_over_budget_plan_is_refused_with_exit_3_and_nothing_submitted(project: Path) -> None:
    with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        env = {"APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": "sk-sim-x"}
        done = cli(project, "run", "m.yaml", "--max-usd", "0.5", "--time-scale", str(SCALE), env=env)
        assert sim.stats()["submits"]["requests"] == 0
    assert done.returncode == 3
    assert "over the budget of $0.50" in done.stderr


def test_simulate_runs_with_no_key_and_a_second_run_does_nothing(project: Path) -> None:
    first = cli(project, "run", "m.yaml", "--simulate")
    assert first.returncode == 0, first.stderr
    assert len(list((project / "renders").rglob("*.mp4"))) == 5
    second = cli(project, "run", "m.yaml", "--simulate")
    assert second.returncode == 0
    assert "submitted 0 this run" in second.stdout
    table = cli(project, "status", "m.yaml")
    assert table.returncode == 0 and "5 done; spent $1.40" in table.stdout


@pytest.mark.parametrize(("content", "message"), [
    (b"APIDOT_API_KEY=sk-x\n\nAPIDOT_BASE_URL=\"http://unterminated\n",
     ".env:3: cannot parse this line (expected NAME=value); fix or remove it"),
    (b"just some words\n", ".env:1: cannot parse this line (expected NAME=value); fix or remove it"),
    (b"APIDOT_API_KEY=\xff\xfe\n", ".env: cannot read it: it is not UTF-8 text; fix or remove the file"),
])
def test_a_dotenv_with_junk_is_one_line_naming_it(project: Path, content: bytes, message: str) -> None:
    (project / ".env").write_bytes(content)
    done = cli(project, "run", "m.yaml")
    assert (done.returncode, done.stderr.strip()) == (2, message)
    assert not (project / ".seedance").exists()


def test_a_dotenv_is_read_as_python_dotenv_reads_it(tmp_path: Path) -> None:
    from seedance_batch.pipeline import credentials

    (tmp_path / ".env").write_text("# keys\nexport APIDOT_API_KEY='sk-quoted'\nAPIDOT_BASE_URL=\n")
    assert credentials({}, tmp_path) == ("https://api.apidot.ai", "sk-quoted")
    assert credentials({"APIDOT_API_KEY": "sk-env"}, tmp_path)[1] == "sk-env"


@pytest.mark.parametrize(("listen", "message"), [
    ("8787", "error: --listen must be HOST:PORT (a port up to 65535), got '8787'"),
    ("localhost:99999", "error: --listen must be HOST:PORT (a port up to 65535), got 'localhost:99999'"),
    ("no-such-host.invalid:8787", "error: cannot listen on --listen no-such-host.invalid:8787: "),
])
def test_a_bad_listen_is_one_line_and_exit_2_before_anything_is_sent(project: Path, listen: str,
                                                                     message: str) -> None:
    (project / "m.yaml").write_text(MANIFEST + "  callback_url: https://hooks.example.com/apidot\n")
    with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        env = {"APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": "sk-sim-x"}
        done = cli(project, "run", "m.yaml", "--listen", listen, "--time-scale", str(SCALE), env=env)
        assert sim.stats()["submits"]["requests"] == 0
    assert done.returncode == 2
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr


def test_an_output_dir_that_cannot_be_written_is_refused_before_anything_is_paid(project: Path) -> None:
    (project / "m.yaml").write_text(MANIFEST + "output:\n  dir: blocker/renders\n")
    (project / "blocker").write_text("a file where a folder should be")
    done = cli(project, "run", "m.yaml", "--simulate")
    assert (done.returncode, done.stderr) == (2, (
        "m.yaml:17:8: output.dir: cannot write videos under blocker/renders: Not a directory; "
        "make the folder writable or point output.dir elsewhere\n"))
    assert "submitted" not in done.stdout


def test_a_report_dir_that_cannot_be_written_is_refused_before_anything_is_paid(project: Path) -> None:
    (project / "taken").write_text("a file where the reports should go")
    done = cli(project, "run", "m.yaml", "--simulate", "--report-dir", "taken")
    assert (done.returncode, done.stderr) == (2, (
        "error: cannot write reports under taken: File exists; make it writable or pass another --report-dir\n"))
    assert "submitted" not in done.stdout
    assert not list(project.rglob("*.mp4"))
