"""Outside text shown inert (issue 8): the terminal, summary.md, report.csv and junit.xml.

Every test first builds the hostile input the way it arrives (a manifest value, a ledger
row written by an older version, a service answer from a loopback server, a --prices
file), then asserts the documented outcome: rich markup is shown literally and never
raises, control and bidi characters reach no terminal raw, server text in summary.md is
never a link, image or mention, summary.md stays under GitHub's comment limit, CSV cells
never start a formula and junit.xml stays well-formed.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from rich.console import Console
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cli_support import Outcome, run_cli
from report_campaign import CATALOG, make_job, make_record
from seedance_batch._data import data_path
from seedance_batch.expand import Job
from seedance_batch.ledger import JobRecord, JobState, open_ledger
from seedance_batch.models import price_jobs
from seedance_batch.pipeline import load_plan
from seedance_batch.plan import make_plan
from seedance_batch.report import ReportPaths, markdown, write_reports
from seedance_batch.report.data import build_report
from seedance_batch.report.tables import CSV_COLUMNS
from seedance_batch.run.progress import LineProgress, LiveProgress
from seedance_batch.serving import serve_in_thread

# What no terminal output, CI log line or error line may carry raw: C0 controls but tab and
# newline, DEL, C1 controls (0x9b is an 8-bit CSI), bidi overrides, invisible marks, the BOM.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
CLEAR = "\x1b[2J"  # erase the screen
LINK = "\x1b]8;;http://evil.example\x07"  # OSC 8: a terminal hyperlink
MARKUP = "[/x][link=http://evil.example]go[/link]"
MANIFEST = """\
version: 1
name: evil
defaults:
  model: seedance-2-fast
  resolution: 480p
  duration: 4
matrix:
  n: ["a[/x]\\e[2J", "b[link=http://e.x]\\u202e"]
shots:
  - id: s
    prompt: "shot {{ n }}"
run:
  submits_per_minute: 600
"""


def unsafe(text: str) -> list[str]:
    """The raw control, bidi and invisible characters in ``text`` (none is the answer)."""
    return UNSAFE.findall(text)




@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "m.yaml").write_text(MANIFEST, encoding="utf-8")
    return tmp_path


# --- the terminal -------------------------------------------------------------------------------

HOSTILE_TASK = "t[/x]\x1b[2J\ufffe"
HOSTILE_ERROR = "[link=http://e.x]go\x1b]8;;\x07\u202e"
HOSTILE_FILE = "x[/x][link=e.x]\x1b[2J.mp4"


def hostile_ledger(project: Path) -> Path:
    """A ledger as an older version wrote it: server text stored raw in task ids, errors, paths."""
    _, plan = load_plan(project / "m.yaml", None)
    path = project / ".seedance" / "ledger.sqlite"
    with open_ledger(path) as ledger:
        for planned in plan.jobs:
            job = planned.priced.job
            ledger.begin_submit(campaign=job.campaign, key=job.key, label=job.label, shot=job.shot,
                                request=job.request, credits=56, cost_usd=Decimal("0.28"), output_path=None)
    first, second = (p.priced.job.key for p in plan.jobs)
    db = sqlite3.connect(path)
    with db:  # raw SQL: no scrubbing of today's code stands between the service and the row
        db.execute("UPDATE jobs SET state='failed', task_id=?, error_class='x', error_message=? WHERE key=?",
                   (HOSTILE_TASK, HOSTILE_ERROR, first))
        db.execute("UPDATE jobs SET state='done', task_id='=cmd', output_path=?, sha256=? WHERE key=?",
                   (HOSTILE_FILE, "ab" * 32, second))
    db.close()
    return path


def test_status_shows_markup_and_escapes_literally_from_a_hostile_ledger(project: Path) -> None:
    hostile_ledger(project)
    result = run_cli(project, "status", "m.yaml")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert unsafe(result.out + result.err) == []
    assert "s/a[/x]\\x1b[2J" in result.out  # the label, shown as typed
    assert "s/b[link=http://e.x]\\u202e" in result.out
    assert "t[/x]\\x1b[2J\ufffe" in result.out  # the task id (U+FFFE is no control: kept)
    assert "[link=http://e.x]go\\x1b]8;;\\x07\\u202e" in result.out
    assert "renders/x[/x][link=e.x]\\x1b[2J.mp4" in result.out


def test_status_json_escapes_c1_and_bidi_and_keeps_every_task_id_exact(project: Path) -> None:
    hostile_ledger(project)
    result = run_cli(project, "status", "m.yaml", "--json")
    assert result.code == 0, result.err
    assert unsafe(result.out) == []
    view = json.loads(result.out)
    assert [row["task_id"] for row in view["jobs"]] == [HOSTILE_TASK, "=cmd"]  # never lose a task id
    assert view["jobs"][0]["error"] == HOSTILE_ERROR
    assert view["jobs"][1]["label"] == "s/b[link=http://e.x]\u202e"


def test_prices_file_with_markup_in_its_names_is_shown_literally(project: Path) -> None:
    mine = json.loads(data_path("models.json").read_text(encoding="utf-8"))
    mine["provider"] = "Evil[/x]"
    mine["comparison"] = f"[link=http://evil.example]fal[/x]{CLEAR}"
    (project / "mine.json").write_text(json.dumps(mine), encoding="utf-8")
    prices = run_cli(project, "prices", "--prices", "mine.json")
    assert prices.code == 0, prices.err
    assert "Evil[/x] prices per second of video" in prices.out
    assert "[link=http://evil.example]fal[/x]\\x1b[2J USD/s" in " ".join(prices.out.replace("│", " ").split())
    plan = run_cli(project, "plan", "m.yaml", "--prices", "mine.json")
    assert plan.code == 0, plan.err
    assert "([link=http://evil.example]fal[/x]\\x1b[2J would charge $" in plan.out
    assert unsafe(prices.out + prices.err + plan.out + plan.err) == []


def _hostile_service(task_id: str, message: str) -> Starlette:
    """An APIDot look-alike: every submit gets ``task_id``-N, every task fails with ``message``."""
    counter = iter(range(1, 1000))

    async def submit(request: Request) -> JSONResponse:
        return JSONResponse({"code": 200, "data": {"task_id": f"{task_id}{next(counter)}", "status": "not_started"}})

    async def status(request: Request) -> JSONResponse:
        return JSONResponse({"code": 200, "data": {"task_id": request.path_params["task_id"], "status": "failed",
                                                   "error_message": message}})

    return Starlette(routes=[Route("/api/generate/submit", submit, methods=["POST"]),
                             Route("/api/generate/status/{task_id:path}", status)])


def _run(project: Path, app: Starlette) -> Outcome:
    with serve_in_thread(app) as url:
        env = {"APIDOT_BASE_URL": url, "APIDOT_API_KEY": "sk-test-hostile-0123456789"}
        return run_cli(project, "run", "m.yaml", "--time-scale", "0.002", env=env)


def test_run_log_shows_hostile_service_text_inert(project: Path) -> None:
    result = _run(project, _hostile_service("task-[/x]-", f"{MARKUP}{CLEAR}{LINK}\u202eboom\x9b31m"))
    assert result.code == 1, result.err  # jobs failed
    assert "Traceback" not in result.err
    assert unsafe(result.out + result.err) == []
    assert "s/a[/x]\\x1b[2J: failed" in result.err  # the CI log line, label first
    assert f"{MARKUP}\\x1b[2J\\x1b]8;;http://evil.example\\x07\\u202eboom\\x9b31m" in result.err


def test_an_account_error_quoting_hostile_text_prints_one_inert_line(project: Path) -> None:
    async def refuse(request: Request) -> JSONResponse:
        return JSONResponse({"code": 401, "error": {"message": f"bad key {CLEAR}[/x]\u202e", "type": "x"}},
                            status_code=401)

    result = _run(project, Starlette(routes=[Route("/api/generate/submit", refuse, methods=["POST"])]))
    assert result.code == 4, result.err
    assert "Traceback" not in result.err
    assert unsafe(result.out + result.err) == []
    assert result.err.splitlines()[-1] == (
        "error: submit: HTTP 401: bad key \\x1b[2J[/x]\\u202e; check APIDOT_API_KEY (environment or .env)")


def _live_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=200, color_system="standard"), out


def test_live_display_shows_markup_and_escapes_literally() -> None:
    console, out = _live_console()
    progress = LiveProgress(console)
    progress.start(2, Decimal("5"), Decimal(0))
    progress.job(f"s/a{MARKUP}{CLEAR}", "failed", f"{MARKUP}{LINK}\u202e")  # used to raise MarkupError
    progress.job("s/b", "retry", "[bold]not bold[/bold]")
    progress.note(f"stopping: {CLEAR}[/x]\nsecond line")
    progress.close()
    text = out.getvalue()
    assert f"s/a{MARKUP}\\x1b[2J" in text and f"{MARKUP}\\x1b]8;;http://evil.example\\x07\\u202e" in text
    assert "[bold]not bold[/bold]" in text
    assert "stopping: \\x1b[2J[/x]\\x0asecond line" in text
    assert CLEAR not in text and "\x1b]8;" not in text and "\u202e" not in text  # rich's own codes only


def test_line_progress_writes_one_inert_line_per_event() -> None:
    out = io.StringIO()
    progress = LineProgress(out)
    progress.start(1, None, Decimal(0))
    progress.job(f"s/a{CLEAR}", "failed", f"multi\nline{LINK}")
    progress.note(f"{CLEAR}note\x9b")
    lines = out.getvalue().splitlines()
    assert unsafe(out.getvalue()) == []
    assert lines[1].endswith("s/a\\x1b[2J: failed (multi\\x0aline\\x1b]8;;http://evil.example\\x07)")
    assert lines[2].endswith("] \\x1b[2Jnote\\x9b") and len(lines) == 3


# --- the reports ----------------------------------------------------------------------------------

def _reports(tmp_path: Path, jobs: list[Job], records: list[JobRecord], **kwargs: Any) -> ReportPaths:
    """The five reports of ``jobs`` and their ledger ``records``, written under ``tmp_path/r``."""
    plan = make_plan(price_jobs(jobs, CATALOG), records, manifest_path=Path("m.yaml"), catalog=CATALOG,
                     budget_usd=None)
    return write_reports(plan, records, out_dir=tmp_path / "r", manifest_sha256="", step_summary=False, **kwargs)


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("APIDOT_API_KEY", raising=False)  # the pull-request plan job has no key
    yield tmp_path


def _outside_code(markdown: str) -> list[str]:
    """Every text summary.md shows outside code spans, having checked it makes no link, image or HTML."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    inline = [child for token in tokens if token.children for child in token.children]
    kinds = {token.type for token in tokens} | {child.type for child in inline}
    assert not kinds & {"link_open", "image", "html_inline", "html_block", "autolink"}, kinds
    return [child.content for child in inline if child.type == "text"]


# GitHub refuses a pull-request comment longer than this.
GITHUB_COMMENT_LIMIT = 65_536
MENTION_OR_LINK = re.compile(r"@\w|://|www\.|\]\(|<", re.IGNORECASE)


def test_summary_md_never_turns_server_text_into_links_images_or_mentions(cwd: Path) -> None:
    evil = "see @octocat ![i](http://evil.example/i.png) [here](http://evil.example) <img src=x> www.evil.example"
    jobs = [replace(make_job("hero", "en-US", "16:9"), label="hero/@admin [x](http://evil.example)"),
            make_job("hero", "fr-FR", "16:9")]
    records = [make_record(jobs[0], JobState.FAILED, error_message=f"{evil} `tick` a\\|b | c{CLEAR}\u202e"),
               make_record(jobs[1], JobState.FAILED, error_message="``double`` `")]
    summary = _reports(cwd, jobs, records, manifest_path="@team/[m](http://evil.example).yaml").summary
    text = summary.read_text(encoding="utf-8")
    shown = _outside_code(text)
    assert [piece for piece in shown if MENTION_OR_LINK.search(piece)] == []
    assert unsafe(text) == []
    table = [line for line in text.splitlines() if line.startswith("| `hero/")]
    assert len(table) == 2
    rows = MarkdownIt("commonmark").enable("table").parse(text)
    cells = [t for t in rows if t.type == "td_open"]
    assert len(cells) == 8  # two rows of four cells: no pipe in a message split a cell
    codes = [child.content for t in rows if t.children for child in t.children if child.type == "code_inline"]
    # Shown in full, literally; the report already dropped the ESC (XML cannot carry it) and a
    # backslash before a pipe shows doubled (the price of escaping the pipe for cmark-gfm).
    assert f"{evil} `tick` a\\\\|b | c[2J\\u202e" in codes
    assert "``double`` `" in codes


def test_summary_md_stays_under_githubs_comment_limit_whatever_the_ledger_holds() -> None:
    jobs = [make_job("s", f"l{i:04d}", "16:9", prompt=f"prompt {i}") for i in range(5000)]
    jobs[1] = replace(jobs[1], label="s/" + "L" * 100_000)
    huge = "x" * (20 * 1024 * 1024)
    records = [make_record(job, JobState.FAILED, error_message=huge if i == 0 else f"failed {'y' * 900} {i}")
               for i, job in enumerate(jobs)]
    plan = make_plan(price_jobs(jobs, CATALOG), records, manifest_path=Path("m.yaml"), catalog=CATALOG,
                     budget_usd=None)
    # The pure functions write_reports calls, without writing 5,000 rows in four other formats.
    report = build_report(plan, records, report_dir="r", output_dir="renders", manifest_sha256="",
                          generated_at=datetime.now(timezone.utc))
    text = markdown.report_markdown(report)
    assert len(text) < GITHUB_COMMENT_LIMIT
    assert "#### Failures (5000)" in text
    assert "_and 4980 more: see report.html_" in text
    assert "… (20971020 more characters)" in text  # the 20 MB message is cut, and says by how much
    assert "… (99402 more characters)" in text  # so is the 100,002-character label


def test_summary_md_drops_rows_rather_than_cross_its_own_limit(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Bounded cells keep twenty rows far under the real limit; a small one shows the guard at work.
    monkeypatch.setattr(markdown, "MAX_SUMMARY", 4_000)
    jobs = [replace(make_job("s", f"l{i:02d}", "16:9"), label=f"s/{i:02d}/" + "L" * 5000) for i in range(20)]
    records = [make_record(job, JobState.FAILED, error_message="m" * 5000) for job in jobs]
    text = _reports(cwd, jobs, records).summary.read_text(encoding="utf-8")
    assert len(text) <= 4_000
    shown = [line for line in text.splitlines() if line.startswith("| `s/")]
    assert 0 < len(shown) < 20
    assert text.endswith(f"\n\n_and {20 - len(shown)} more: see report.html_\n")


def test_junit_stays_well_formed_with_a_noncharacter_task_id_and_a_control_in_the_manifest_name(cwd: Path) -> None:
    job = make_job("hero", "en-US", "16:9")
    record = make_record(job, JobState.FAILED, task_id="task-\ufffe1\x01", error_class="bad\x02",
                         error_message="no\x0b")
    paths = _reports(cwd, [job], [record], manifest_path="m\x01.yaml")
    root = ET.fromstring(paths.junit.read_bytes())
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["manifest"] == "m.yaml"
    failure = next(root.iter("failure"))
    assert "task_id: task-1" in (failure.text or "")
    assert failure.get("type") == "bad"


def test_csv_guards_every_column_of_outside_text_against_formulas(cwd: Path) -> None:
    job = replace(make_job("hero", "en-US", "16:9"), label="@label", shot="-shot", combination={"locale": "+1"})
    record = make_record(job, JobState.DONE, task_id="=cmd|' /C calc'!A0", error_class="@SUM(1)",
                         error_message="-2+3", sha256="=1+1", submitted_at="+1", finished_at="@now",
                         output_path=job.output_path, downloaded_at="2026-04-19T10:01:40Z")
    target = Path("=HYPERLINK(1)") / job.output_path
    target.parent.mkdir(parents=True)
    target.write_bytes(b"video")
    paths = _reports(cwd, [job], [record], output_dir=Path("=HYPERLINK(1)"))
    rows = list(csv.reader(io.StringIO(paths.csv.read_text(encoding="utf-8-sig"), newline="")))
    header, row = rows
    assert header == list(CSV_COLUMNS)
    values = dict(zip(header, row, strict=True))
    for name in ("label", "shot", "task_id", "file", "error_class", "error_message", "sha256",
                 "submitted_at", "finished_at"):
        assert values[name][0] == "'", (name, values[name])
    assert values["task_id"] == "'=cmd|' /C calc'!A0"
    assert [cell for cell in row if cell[:1] in ("=", "+", "-", "@")] == []


def test_reports_scrub_credential_shaped_tokens_without_the_key_in_the_environment(cwd: Path) -> None:
    job = replace(make_job("hero", "en-US", "16:9"), label="hero/sk-label-abcdefghijkl")
    record = make_record(job, JobState.FAILED, task_id="sk-task-abcdefghijkl",
                         error_message="echo: Authorization: Bearer sk-live-abcdefghijkl, Bearer opaque.token.1",
                         file_url="https://cdn.example.com/v.mp4 sk-url-abcdefghijkl")
    paths = _reports(cwd, [job], [record])
    for path in paths.files():
        text = path.read_text(encoding="utf-8-sig")
        for secret in ("abcdefghijkl", "opaque.token.1"):
            assert secret not in text, (path.name, secret)
    assert paths.report.rows[0].error_message == "echo: Authorization: Bearer ***, Bearer ***"
