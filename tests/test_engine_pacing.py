"""429 as a pacing signal: a run against the contract's fixed rate windows (no Retry-After) ends well.

The real simulator over loopback, a real SQLite ledger. The client is allowed twice the
server's rate and only one attempt per job: a 429 that used up an attempt would leave
jobs pending and the run exiting 1. The pacer's arithmetic alone is in test_ratelimit.py;
the wall-time target (1.2x the ideal) is bench/run_throughput.py's, not a timed test.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cli_support import Project
from engine_support import ALL_END, make_jobs, plan_for, run_engine, settings
from seedance_batch.ledger import JobState, Ledger
from seedance_batch.simulator import SimulatorConfig, run_simulator

SCALE = 0.02  # a 10 s rate window lasts 0.2 s; a render about 0.5 s
SERVER_PER_MINUTE = 30  # 5 submits per 10 s window: 25 a real second
CLIENT_PER_MINUTE = 60  # twice the server's


def limited(mode: str) -> SimulatorConfig:
    return SimulatorConfig(time_scale=SCALE, submits_per_minute=SERVER_PER_MINUTE, rate_limit_mode=mode,
                           faults=ALL_END)


@pytest.mark.parametrize("mode", ["fixed", "lockout", "sliding"])
def test_a_run_at_twice_the_servers_rate_finishes_every_job_with_one_attempt_each(
        mode: str, tmp_path: Path, ledger: Ledger) -> None:
    jobs = make_jobs(30)
    run_settings = replace(settings(tmp_path, submits_per_minute=CLIENT_PER_MINUTE, max_attempts=1, timeout=3000,
                                    max_in_flight=60), time_scale=SCALE)
    with run_simulator(limited(mode)) as sim:
        result = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, run_settings)
        stats = sim.stats()
    assert result.counts() == {"done": 30} and result.exit_code == 0
    assert set(stats["submits"]["by_body"].values()) == {1}  # nothing paid twice
    assert stats["rate_limited"]["submit"] > 0  # the limit did trip: the client was allowed twice the rate
    assert result.stats["rate_limited"]["submit"] == stats["rate_limited"]["submit"]
    learned = result.stats["submits_per_minute_learned"]
    assert learned is not None and learned < CLIENT_PER_MINUTE  # it slowed to what the server accepts
    assert result.pacing() is not None and result.pacing().startswith(  # type: ignore[union-attr]
        f"429 answers: {stats['rate_limited']['submit']} (submit {stats['rate_limited']['submit']})")
    assert "gave_up" not in {e.kind for e in ledger.events("demo")}


def test_a_service_that_only_answers_429_still_ends_the_run(tmp_path: Path, ledger: Ledger) -> None:
    # rate_limit_patience 0: the first 429 of a submit counts as its attempt, so a throttled-for-good
    # account (here: one submit a window, locked out for good by a client at 60x) ends the run.
    jobs = make_jobs(12)
    config = SimulatorConfig(time_scale=SCALE, submits_per_minute=6, rate_limit_mode="lockout", faults=ALL_END)
    run_settings = replace(settings(tmp_path, submits_per_minute=600, max_attempts=1), time_scale=SCALE,
                           rate_limit_patience=1e-9)
    with run_simulator(config) as sim:
        result = run_engine(plan_for(jobs, ledger), sim.base_url, ledger, run_settings)
    assert result.exit_code == 1
    assert result.counts().get("done", 0) < 12
    gave_up = [e for e in ledger.events("demo") if e.kind == "gave_up"]
    assert gave_up and gave_up[0].detail["error"].startswith("not submitted after 1 attempt(s): submit: HTTP 429")
    assert all(r.state in (JobState.DONE, JobState.PENDING) for r in result.records)


MANIFEST = """\
version: 1
name: paced
defaults:
  model: seedance-2-fast
  resolution: 480p
  duration: 4
matrix:
  n: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p]
shots:
  - id: s
    prompt: "shot {{ n }}"
run:
  submits_per_minute: 60
  max_in_flight: 16  # every job in the air at once: the submits are the client's rate, not the renders'
  max_attempts: 1
"""


def test_the_run_summary_says_how_many_429s_the_service_answered(project: Project) -> None:
    project.write("m.yaml", MANIFEST)
    with run_simulator(limited("fixed")) as sim:
        env = {"APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": "sk-sim-pacing"}
        done = project.run("run", "m.yaml", "--time-scale", str(SCALE), env=env)
        limits = sim.stats()["rate_limited"]["submit"]
    done.assert_success()
    assert "paced: 16 done; submitted 16 this run; " in done.out
    assert f"; 429 answers: {limits} (submit {limits}); submits paced to " in done.out
    assert limits > 0
