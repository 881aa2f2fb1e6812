"""`seedance-batch receive`: the receiver alone, a real subprocess, feeding runs through a shared ledger;
and a run's own receiver storing the callbacks of the other runners sharing its ledger."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import httpx

from cli_support import Project, clean_environment
from seedance_batch.ledger import open_ledger
from seedance_batch.receiving import run_callbacks
from seedance_batch.run.settings import RunSettings
from seedance_batch.simulator import Faults, SimulatorConfig, run_simulator
from seedance_batch.verifiers import mint_token, token_digest
from seedance_batch.webhooks import EventRelay

SCALE = 0.01  # a safety poll lands ~30 service seconds after a task should have called back: 0.3 s here
CANARY = "sk-CANARY-body-7f3a"
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
  submits_per_minute: 60
  callback_url: CALLBACK
"""
REQUEST = {"model": "seedance-2-fast", "input": {"prompt": "p", "duration": 4, "resolution": "480p"}}


def start_receiver(project: Project) -> tuple[subprocess.Popen[str], str]:
    """``seedance-batch receive`` on a free loopback port; the process and the URL it announced."""
    proc = subprocess.Popen([sys.executable, "-m", "seedance_batch", "receive", "--listen", "127.0.0.1:0",
                             "--state", ".seedance/ledger.sqlite"], cwd=project.path, env=clean_environment(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # blocks until it listens (or exits: then the assert shows why)
    assert first.startswith("receiving callbacks on http://127.0.0.1:"), (first, proc.stderr and proc.stderr.read())
    return proc, first.split()[3]


def stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def test_receive_feeds_a_run_that_listens_nowhere_through_the_ledger(project: Project) -> None:
    (project.path / ".seedance").mkdir()
    receiver, url = start_receiver(project)
    try:
        project.write("m.yaml", MANIFEST.replace("CALLBACK", f"{url}/apidot/callback"))
        config = SimulatorConfig(time_scale=SCALE, faults=Faults(task_stuck=0.0))
        with run_simulator(config) as sim:
            env = {"APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": "sk-sim-x"}
            done = project.run("run", "m.yaml", "--listen", "off", "--time-scale", str(SCALE), env=env)
            stats = sim.stats()
            # the service's own record of the callback URLs the run submitted: its secret, last
            submitted = sim._read(lambda service: {"urls": [t.callback_url for t in service.tasks.values()]})
        stranger = httpx.post(f"{url}/apidot/callback/no-secret-here", json={"task_id": CANARY, "status": "finished"})
    finally:
        code, out, err = stop(receiver)
    done.assert_success()
    assert "tiny: 5 done; submitted 5 this run" in done.out
    assert stats["webhooks"]["delivered"] == 5
    # each job woken by its event, read from the ledger: one status call each, no safety poll first
    assert stats["status_calls"] == 5
    assert stranger.status_code == 404
    assert code == 0, err
    assert out.endswith("receiver stopped; 5 event(s) stored, refused 1 x 404\n"), out
    assert "refused a POST from 127.0.0.1: 404, no callback secret in the path" in err
    assert CANARY not in err + out and "Traceback" not in err
    with open_ledger(project.path / ".seedance" / "ledger.sqlite") as ledger:
        assert sum(1 for e in ledger.events("tiny") if e.kind == "webhook") == 5
        assert ledger.callback_tokens() == {}  # the run revoked its secret when it ended
    secrets = {url.rsplit("/", 1)[1] for url in submitted["urls"]}
    assert len(secrets) == 1 and next(iter(secrets)).startswith("sk-hook-")
    secret = next(iter(secrets))
    assert submitted["urls"][0] == f"{url}/apidot/callback/{secret}"
    # the secret is in the callback URL submitted and nowhere else: not the ledger, the reports,
    # the run's output or the receiver's
    assert secret not in done.out + done.err + out + err
    for folder in (".seedance", "reports"):
        for path in (project.path / folder).rglob("*"):
            assert not path.is_file() or secret.encode() not in path.read_bytes(), path


def test_receive_refuses_a_bad_listen_and_a_verifier_list_without_the_secret(project: Project) -> None:
    bad = project.run("receive", "--listen", "nowhere")
    bad.assert_failed(2)
    assert bad.err == "error: --listen must be HOST:PORT (a port up to 65535), got 'nowhere'\n"
    unsigned = project.run("receive", "--verify", "standard-webhooks")
    unsigned.assert_failed(2)
    assert unsigned.err.startswith("error: --verify must include secret-path")


def test_a_runs_receiver_stores_the_callbacks_of_other_runners_of_its_ledger(tmp_path: Path) -> None:
    """C2's shared ledger: a callback may reach any runner's receiver; it is stored, and the runner
    tracking that task reads it (its event cursor). A secret of another campaign stays refused."""
    other_runner, other_campaign = mint_token(), mint_token()
    with open_ledger(tmp_path / "shared.sqlite") as ledger:
        ledger.begin_submit(campaign="demo", key="k1", label="s/one", shot="s", request=REQUEST, credits=56,
                            cost_usd=Decimal("0.28"), output_path="demo/s/one.mp4")
        ledger.submitted("demo", "k1", "task-1", "not_started")
        ledger.add_callback_token("demo", token_digest(other_runner))
        ledger.add_callback_token("elsewhere", token_digest(other_campaign))
        settings = replace(RunSettings(), callback_url="https://hooks.example.com/apidot")
        with run_callbacks(ledger, settings, campaign="demo", listen=None, simulate=True, verify=("secret-path",),
                           relay=EventRelay()) as ours:
            assert ours.callback_url is not None
            base = ours.callback_url.rsplit("/", 1)[0]
            own = ours.callback_url.rsplit("/", 1)[1]
            assert token_digest(own) in ledger.callback_tokens()
            event = {"task_id": "task-1", "status": "finished", "files": []}
            with httpx.Client() as http:
                assert http.post(f"{base}/{own}", json=event).status_code == 200
                assert http.post(f"{base}/{other_runner}", json=event).status_code == 200
                assert http.post(f"{base}/{other_campaign}", json=event).status_code == 404
                assert http.post(f"{base}/{mint_token()}", json=event).status_code == 404
        assert sum(1 for e in ledger.events("demo") if e.kind == "webhook") == 2
        assert token_digest(own) not in ledger.callback_tokens()  # revoked as the run ended
