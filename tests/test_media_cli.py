"""The media check through the real CLI: `plan --check-media`, and `run` before it submits anything.

A media host of the tests' own (tests/media_hosts.py) and, for `run`, the APIDot
simulator, both on loopback in this process; the CLI runs as a real subprocess
against them. What is asserted is what a user sees (the lines, the exit code) and what
the servers saw (media requests; submits: none when the media are wrong).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest

from cli_support import Project
from media_hosts import MediaHost, Served
from seedance_batch.simulator import Faults, SimulatorConfig, run_simulator

SCALE = 0.01


def manifest(host: MediaHost, *, video: str = "/dance.mp4") -> str:
    return f"""version: 1
name: media-cli
defaults:
  model: seedance-2-fast
  resolution: 480p
  duration: 4
matrix:
  locale: [en-US, de-DE, fr-FR]
shots:
  - id: hero
    prompt: the hero shot, in {{{{ locale }}}}
    image_urls: ["{host.url('/hero.png?sig=s3cr3t-token')}", "{host.url('/last.png')}"]
  - id: dance
    prompt: the dance, in {{{{ locale }}}}
    reference_video_urls:
      - {host.url(video)}
"""


@pytest.fixture
def host() -> Iterator[MediaHost]:
    files = {"/hero.png": Served(etag='"h1"'), "/last.png": Served(content_type="image/jpeg"),
             "/dance.mp4": Served(content_type="video/mp4", size=5 << 20),
             "/page.mp4": Served(content_type="text/html")}
    with MediaHost(files).serve() as serving:
        yield serving


def test_plan_check_media_reports_each_problem_at_its_line_and_exits_2(project: Project, host: MediaHost) -> None:
    del host.files["/last.png"]
    project.write("m.yaml", manifest(host, video="/page.mp4"))
    outcome = project.run("plan", "m.yaml", "--check-media").assert_failed(2)
    assert outcome.out.splitlines()[-1] == ("media checked: 3 URL(s) for 6 job(s): 0 from the cache, 3 asked; "
                                            "2 problem(s)")
    assert outcome.err.splitlines() == [
        f"m.yaml:12:17: shots[0].image_urls[1]: {host.url('/last.png')}: not found (HTTP 404); "
        "used by 3 jobs: hero/en-US and 2 more",
        f"m.yaml:16:7: shots[1].reference_video_urls[0]: {host.url('/page.mp4')}: is text/html; "
        "reference_video_urls takes video/*; used by 3 jobs: dance/en-US and 2 more",
    ]
    assert "s3cr3t" not in outcome.out + outcome.err


def test_a_second_plan_within_the_hour_asks_the_host_nothing(project: Project, host: MediaHost) -> None:
    project.write("m.yaml", manifest(host))
    first = project.run("plan", "m.yaml", "--check-media").assert_success()
    asked = len(host.seen)
    second = project.run("plan", "m.yaml", "--check-media", "--json").assert_success()
    assert first.out.splitlines()[-1] == "media checked: 3 URL(s) for 6 job(s): 0 from the cache, 3 asked"
    assert second.err == "media checked: 3 URL(s) for 6 job(s): 3 from the cache, 0 asked\n"
    assert json.loads(second.out)["counts"]["new"] == 6  # stdout stays one JSON object
    assert (asked, len(host.seen)) == (3, 3)
    ledger = project.path / ".seedance" / "ledger.sqlite"  # plan --check-media keeps its cache there
    stored = sqlite3.connect(ledger).execute("SELECT shown FROM media_checks ORDER BY shown").fetchall()
    assert stored == [(host.url("/dance.mp4"),), (host.url("/hero.png?REDACTED"),), (host.url("/last.png"),)]


def test_plain_plan_asks_no_media_host_and_creates_no_ledger(project: Project, host: MediaHost) -> None:
    project.write("m.yaml", manifest(host))
    project.run("plan", "m.yaml").assert_success()
    assert host.seen == []
    assert not (project.path / ".seedance").exists()


def test_run_refuses_bad_media_before_submitting_anything(project: Project, host: MediaHost) -> None:
    project.write("m.yaml", manifest(host, video="/page.mp4"))
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=Faults(task_stuck=0))) as sim:
        env = {"APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": "sk-sim-media-0123456789"}
        outcome = project.run("run", "m.yaml", "--time-scale", str(SCALE), env=env).assert_failed(2)
        submits = sim.stats()["submits"]["requests"]
    assert submits == 0
    err = outcome.err.splitlines()
    assert err[0].endswith("] media checked: 3 URL(s) for 6 job(s): 0 from the cache, 3 asked; 1 problem(s); "
                           "nothing was submitted")
    assert err[1:] == [f"m.yaml:16:7: shots[1].reference_video_urls[0]: {host.url('/page.mp4')}: is text/html; "
                       "reference_video_urls takes video/*; used by 3 jobs: dance/en-US and 2 more"]
    assert all("authorization" not in seen.headers for seen in host.seen)
    db = sqlite3.connect(project.path / ".seedance" / "ledger.sqlite")
    assert db.execute("SELECT count(*) FROM jobs").fetchone() == (0,)


def test_run_checks_then_renders_and_done_jobs_media_are_not_checked_again(project: Project,
                                                                           host: MediaHost) -> None:
    project.write("m.yaml", manifest(host))
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=Faults(task_stuck=0))) as sim:
        env = {"APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": "sk-sim-media-0123456789"}
        rendered = project.run("run", "m.yaml", "--time-scale", str(SCALE), env=env).assert_success()
        again = project.run("run", "m.yaml", "--time-scale", str(SCALE), env=env).assert_success()
    assert "media checked: 3 URL(s) for 6 job(s): 0 from the cache, 3 asked\n" in rendered.err
    assert "submitted 6 this run" in rendered.out and "submitted 0 this run" in again.out
    assert "media" not in again.err  # nothing to submit: nothing to check
    assert len(host.seen) == 3
    planned = project.run("plan", "m.yaml", "--check-media").assert_success()
    assert planned.out.splitlines()[-1] == "media checked: the jobs to submit use no source media URLs"
    assert len(host.seen) == 3


def test_no_check_media_skips_the_check_and_says_so(project: Project, host: MediaHost) -> None:
    project.write("m.yaml", manifest(host, video="/page.mp4"))
    with run_simulator(SimulatorConfig(time_scale=SCALE, faults=Faults(task_stuck=0))) as sim:
        env = {"APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": "sk-sim-media-0123456789"}
        outcome = project.run("run", "m.yaml", "--time-scale", str(SCALE), "--no-check-media",
                              env=env).assert_success()
    assert outcome.err.splitlines()[0].endswith("] media not checked (3 URL(s)): --no-check-media")
    assert host.seen == []


def test_simulate_checks_no_media_and_says_so(project: Project, host: MediaHost) -> None:
    project.write("m.yaml", manifest(host, video="/page.mp4"))
    outcome = project.run("run", "m.yaml", "--simulate").assert_success()
    assert outcome.err.splitlines()[0].endswith(
        "] media not checked (3 URL(s)): --simulate fetches none; plan --check-media checks them")
    assert host.seen == []


def test_a_campaign_without_media_checks_nothing_and_creates_no_ledger(project: Project) -> None:
    project.write("m.yaml", "version: 1\nname: plain\ndefaults: {model: seedance-2-fast, resolution: 480p, "
                            "duration: 4}\nshots:\n  - {id: a, prompt: a lighthouse}\n")
    outcome = project.run("plan", "m.yaml", "--check-media").assert_success()
    assert outcome.out.splitlines()[-1] == "media checked: the jobs to submit use no source media URLs"
    assert not (project.path / ".seedance").exists()


def test_where_the_ledger_cannot_be_written_the_check_stands_and_says_it_kept_nothing(project: Project,
                                                                                      host: MediaHost) -> None:
    project.write("m.yaml", manifest(host))
    project.write("not-a-folder", "a file where the ledger's folder would be\n")
    outcome = project.run("plan", "m.yaml", "--check-media", "--state", "not-a-folder/ledger.sqlite")
    outcome.assert_success()
    assert outcome.out.splitlines()[-1].startswith(
        "media checked: 3 URL(s) for 6 job(s): 0 from the cache, 3 asked; not cached: cannot open the ledger: ")
    assert len(host.seen) == 3
