"""``seedance-batch ledger copy SRC DST``: a campaign's history from a SQLite file into PostgreSQL and back.

Real ledgers on both sides (a file a real run wrote; a database on the tests' own server), the
real CLI: row for row, twice without change, and a row that differs is refused untouched.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

from cli_support import Project
from engine_support import numbered_manifest
from seedance_batch.ledger import JobState, open_ledger

LINE = re.compile(r"^(?P<campaign>\S+): (?P<jobs>\d+) job\(s\) and (?P<events>\d+) event\(s\) in (?P<where>\S+): "
                  r"(?P<jobs_added>\d+) job\(s\) and (?P<events_added>\d+) event\(s\) copied, (?P<jobs_same>\d+) "
                  r"job\(s\) and (?P<events_same>\d+) event\(s\) there already; checked \(sha256 (?P<digest>[0-9a-f]{16})\)$")


def _copied(out: str) -> list[dict[str, str]]:
    found = [LINE.match(line) for line in out.splitlines()]
    assert all(found), out
    return [match.groupdict() for match in found if match]


def _rendered(project: Project, name: str = "moving", jobs: int = 4) -> str:
    """A campaign a real run rendered into the default SQLite ledger; the manifest's file name."""
    project.write(f"{name}.yaml", numbered_manifest(name, jobs, max_in_flight=jobs))
    project.run("run", f"{name}.yaml", "--simulate").assert_success()
    return f"{name}.yaml"


def test_a_campaign_moves_into_postgresql_and_back_row_for_row(project: Project, pg_url: str) -> None:
    manifest = _rendered(project)
    sqlite = ".seedance/ledger.sqlite"
    [first] = _copied(project.run("ledger", "copy", sqlite, pg_url).assert_success().out)
    assert (first["campaign"], first["jobs"], first["jobs_added"], first["jobs_same"], first["where"]) == (
        "moving", "4", "4", "0", pg_url)
    assert first["events_added"] == first["events"] and first["events_same"] == "0"
    [again] = _copied(project.run("ledger", "copy", sqlite, pg_url).assert_success().out)  # idempotent
    assert (again["jobs_added"], again["events_added"], again["jobs_same"], again["events_same"]) == (
        "0", "0", "4", first["events"])
    # the shared ledger is the campaign now: everything done, nothing to submit, from anywhere
    status = json.loads(project.run("status", manifest, "--json", "--state", pg_url).assert_success().out)
    assert status["totals"] == {"done": 4} and status["ledger"] == pg_url
    plan = json.loads(project.run("plan", manifest, "--json", "--state", pg_url).assert_success().out)
    assert Decimal(plan["total_usd"]) == 0
    # ...and back into a new file: the same rows, the same trail, the same digest
    [back] = _copied(project.run("ledger", "copy", pg_url, "back.sqlite").assert_success().out)
    assert back["digest"] == first["digest"] == again["digest"]
    with open_ledger(project.path / sqlite) as original, open_ledger(project.path / "back.sqlite") as copy:
        assert copy.records("moving") == original.records("moving")
        assert [(e.key, e.at, e.kind, e.state, e.task_id, e.detail) for e in copy.events("moving")] == [
            (e.key, e.at, e.kind, e.state, e.task_id, e.detail) for e in original.events("moving")]


def test_a_row_that_differs_is_never_overwritten(project: Project, pg_url: str) -> None:
    _rendered(project)
    with open_ledger(project.path / ".seedance/ledger.sqlite") as source:
        first = source.records("moving")[0]
    with open_ledger(pg_url) as shared:  # the shared ledger has its own story for one of these jobs
        shared.begin_submit(campaign="moving", key=first.key, label=first.label, shot=first.shot,
                            request=first.request, credits=first.credits, cost_usd=first.cost_usd,
                            output_path=first.output_path)
        before = (shared.records("moving"), shared.events("moving"))
    outcome = project.run("ledger", "copy", ".seedance/ledger.sqlite", pg_url).assert_failed(2)
    assert outcome.out == ""
    assert outcome.err.startswith(f"{pg_url}: job {first.label}: not copied: this job's row differs in the "
                                  "destination: state, task_id, api_status")
    assert outcome.err.endswith("(it is submitting there, done in the source); nothing was written; the "
                                "destination has moved on since: copy the other way, or into another --state\n")
    with open_ledger(pg_url) as shared:
        assert (shared.records("moving"), shared.events("moving")) == before
        assert shared.record("moving", first.key).state is JobState.SUBMITTING  # type: ignore[union-attr]


def test_one_campaign_of_several_and_a_campaign_that_is_not_there(project: Project, pg_url: str) -> None:
    _rendered(project, "first", 2)
    _rendered(project, "second", 3)
    [only] = _copied(project.run("ledger", "copy", ".seedance/ledger.sqlite", pg_url, "--campaign", "second")
                     .assert_success().out)
    assert (only["campaign"], only["jobs"]) == ("second", "3")
    with open_ledger(pg_url) as shared:
        assert shared.campaigns() == ["second"]
    project.run("ledger", "copy", ".seedance/ledger.sqlite", pg_url, "--campaign", "third").assert_failed(
        2).assert_out_err("", "error: campaign third is not in .seedance/ledger.sqlite (it holds first, second)\n")
    both = _copied(project.run("ledger", "copy", ".seedance/ledger.sqlite", pg_url).assert_success().out)
    assert [(c["campaign"], c["jobs_added"], c["jobs_same"]) for c in both] == [("first", "2", "0"),
                                                                                 ("second", "0", "3")]


def test_nothing_to_copy_from_and_the_same_ledger_twice_are_one_line(project: Project, pg_url: str) -> None:
    project.run("ledger", "copy", "missing.sqlite", pg_url).assert_failed(2).assert_out_err("", (
        "error: no ledger at missing.sqlite to copy from; SRC is a ledger file (e.g. .seedance/ledger.sqlite) "
        "or a postgresql:// URL\n"))
    project.run("ledger", "copy", pg_url, pg_url).assert_failed(2).assert_out_err(
        "", f"error: {pg_url} is both SRC and DST; copy into another ledger\n")


def test_a_refused_campaign_leaves_those_copied_before_it_copied_and_said(project: Project, pg_url: str) -> None:
    _rendered(project, "alpha", 2)
    _rendered(project, "beta", 2)
    with open_ledger(project.path / ".seedance/ledger.sqlite") as source:
        theirs = source.records("beta")[0]
    with open_ledger(pg_url) as shared:
        shared.begin_submit(campaign="beta", key=theirs.key, label=theirs.label, shot=theirs.shot,
                            request=theirs.request, credits=theirs.credits, cost_usd=theirs.cost_usd,
                            output_path=theirs.output_path)
    outcome = project.run("ledger", "copy", ".seedance/ledger.sqlite", pg_url).assert_failed(2)
    assert [c["campaign"] for c in _copied(outcome.out)] == ["alpha"]  # said before beta was refused
    assert outcome.err.startswith(f"{pg_url}: job {theirs.label}: not copied: ")
    with open_ledger(pg_url) as shared:
        assert len(shared.records("alpha")) == 2 and len(shared.records("beta")) == 1
