"""``seedance-batch review`` as a user runs it: a real process, a real ledger file, real HTTP.

It prints the link, serves until Ctrl-C (SIGINT: exit 0, saying what is decided),
refuses a bad ``--listen`` or ``--reviewer`` in one line (exit 2), and what it writes
shows in ``status`` (table and ``--json``). An older ledger is read by ``status`` as it
is and migrated by ``review``; a decision row this version cannot read is one line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cli_support import Project, clean_environment
from review_support import render_by_hand, write_campaign
from seedance_batch.ledger import open_ledger

OLD_LEDGER = Path(__file__).parent / "data" / "ledger-86a5b1b.sqlite"
MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"
_LINK = re.compile(r"(http://127\.0\.0\.1:(\d+))/\?token=([A-Za-z0-9_-]+)")


def _rendered(project: Project) -> Path:
    write_campaign(project.path)
    with open_ledger(project.path / ".seedance" / "ledger.sqlite") as ledger:
        render_by_hand(project.path, ledger)
    return project.path / ".seedance" / "ledger.sqlite"


@contextmanager
def _review(project: Project, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[str],
                                                                                              str, str]]:
    """``seedance-batch review m.yaml ARGS`` running; yields the process, its base URL and token.

    What it printed before serving is read whole (its last line is the Ctrl-C hint) and checked.
    """
    process = subprocess.Popen([sys.executable, "-m", "seedance_batch", "review", "m.yaml", *args], cwd=project.path,
                               env={**clean_environment(), **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        found = _LINK.fullmatch(lines[1].strip())
        assert found and lines[0].startswith("reviewing ") and lines[0].endswith(" take(s); open this link in a "
                                                                                 "browser:\n"), lines
        assert lines[2] == "Ctrl-C stops the review (every decision is already in the ledger)\n"
        yield process, found.group(1), found.group(3)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _post(base: str, token: str, body: dict[str, str]) -> int:
    import http.client

    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("POST", "/api/decision", body=json.dumps(body), headers={
        "Content-Type": "application/json", "X-Review-Token": token, "Cookie": f"seedance_review_{port}={token}"})
    status = connection.getresponse().status
    connection.close()
    return status


def _keys(project: Project) -> dict[str, str]:
    from seedance_batch.pipeline import load_plan

    _, plan = load_plan(project.path / "m.yaml", None)
    return {p.priced.job.label: p.priced.job.key for p in plan.jobs}


def test_review_prints_its_link_serves_and_stops_on_ctrl_c(project: Project) -> None:
    ledger = _rendered(project)
    keys = _keys(project)
    with _review(project, "--reviewer", "Ana Lima") as (process, base, token):
        assert _post(base, token, {"key": keys["hero/de-DE/9:16"], "action": "pick"}) == 200
        assert _post(base, token, {"key": keys["outro/de-DE/9:16"], "action": "reject"}) == 200
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out == "review stopped; 2 take(s) approved or rejected in the ledger\n"
    assert err == ""
    rows = sqlite3.connect(ledger).execute("SELECT label, verdict, picked, reviewer FROM decisions").fetchall()
    assert sorted(rows) == [("hero/de-DE/9:16", "approved", 1, "Ana Lima"), ("outro/de-DE/9:16", "rejected", 0,
                                                                             "Ana Lima")]


def test_status_shows_the_decisions(project: Project) -> None:
    _rendered(project)
    keys = _keys(project)
    with _review(project, env={"USER": "ben"}) as (process, base, token):
        _post(base, token, {"key": keys["hero/de-DE/9:16"], "action": "pick"})
        _post(base, token, {"key": keys["hero/de-DE/9:16"], "action": "note", "note": "the <b>best</b> one"})
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    status = json.loads(project.run("status", "m.yaml", "--json").assert_success().out)
    decided = {job["label"]: job["decision"] for job in status["jobs"] if job["decision"]}
    assert list(decided) == ["hero/de-DE/9:16"]
    assert {k: v for k, v in decided["hero/de-DE/9:16"].items() if k != "at"} == {
        "key": keys["hero/de-DE/9:16"], "verdict": "approved", "picked": True, "note": "the <b>best</b> one",
        "reviewer": "ben"}
    table = project.run("status", "m.yaml").assert_success()
    assert table.out.endswith("review: 1 approved, 1 picked\n")


def test_a_bad_listen_or_reviewer_is_one_line_and_exit_2(project: Project) -> None:
    _rendered(project)
    cases = {
        ("--listen", "127.0.0.1"): "error: --listen must be HOST:PORT (an IPv4 address and a port up to 65535; 0: "
                                   "any free port), got '127.0.0.1'\n",
        ("--listen", "example.com:80"): "error: --listen: 'example.com' is not an IPv4 address of this machine; e.g. "
                                        "--listen 127.0.0.1:8790, or 0.0.0.0:8790 to let other machines in\n",
        ("--reviewer", ""): "error: --reviewer: a reviewer's name cannot be empty; pass --reviewer NAME (your name, "
                            "as others should see it)\n",
        ("--reviewer", "ana\x1b[31m"): "error: --reviewer: a reviewer's name is one line of printable characters; "
                                       "pass --reviewer NAME (your name, as others should see it)\n",
    }
    for args, err in cases.items():
        project.run("review", "m.yaml", *args).assert_failed(2).assert_out_err("", err)


def test_a_port_in_use_is_one_line_and_exit_2(project: Project) -> None:
    _rendered(project)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        outcome = project.run("review", "m.yaml", "--listen", f"127.0.0.1:{port}").assert_failed(2)
    assert outcome.err == (f"error: cannot listen on --listen 127.0.0.1:{port}: Address already in use; pass "
                           "--listen HOST:PORT with an IPv4 address of this machine and a free port (0: any)\n")


def test_an_older_ledger_is_read_by_status_and_migrated_by_review(project: Project) -> None:
    for name in ("ad-localization.yaml", "locales.csv"):
        shutil.copy(MANIFESTS / name, project.path / name)
    shutil.copy(MANIFESTS / "ad-localization.yaml", project.path / "m.yaml")
    (project.path / ".seedance").mkdir()
    ledger = project.path / ".seedance" / "ledger.sqlite"
    shutil.copy(OLD_LEDGER, ledger)
    status = json.loads(project.run("status", "m.yaml", "--json").assert_success().out)
    assert status["totals"]["done"] == 20 and all(job["decision"] is None for job in status["jobs"])
    with _review(project, "--reviewer", "ana") as (process, _, _):
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and out.endswith("review stopped; 0 take(s) approved or rejected in the ledger\n")
    names = [row[0] for row in sqlite3.connect(ledger).execute("SELECT name FROM _migrations")]
    assert names[0] == "m001_jobs_and_events" and "m012_decisions" in names


def test_a_decision_row_this_version_cannot_read_is_one_line(project: Project) -> None:
    ledger = _rendered(project)
    with open_ledger(ledger) as opened:
        from seedance_batch.ledger import DecisionChange

        opened.decide("review-test", "k", DecisionChange(note="x"), label="hero/de-DE/9:16", combination="c",
                      reviewer="ana")
    db = sqlite3.connect(ledger)
    db.execute("UPDATE decisions SET verdict = 'maybe'")
    db.commit()
    db.close()
    outcome = project.run("status", "m.yaml", "--json").assert_failed(2)
    assert outcome.out == ""
    assert outcome.err == (f"{os.path.join('.seedance', 'ledger.sqlite')}: job hero/de-DE/9:16: cannot read this "
                           "take's decision: verdict maybe is not one this version knows; upgrade seedance-batch if "
                           "a newer version wrote it, or repair or remove that row (nothing was changed)\n")
