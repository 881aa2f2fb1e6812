"""`plan --diff` on a terminal: the marks, the colours, the bounds (display.plan_changes)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from rich.console import Console

from seedance_batch import display
from seedance_batch.errors import Location
from seedance_batch.expand import Job, request_key
from seedance_batch.ledger import JobRecord, JobState
from seedance_batch.models import load_catalog, price_jobs
from seedance_batch.plan import Plan, make_plan

CATALOG = load_catalog()


def job(label: str, prompt: str) -> Job:
    request = {"model": "seedance-2", "input": {"prompt": prompt, "duration": 5, "resolution": "720p"}}
    return Job(campaign="spring", shot="s", label=label, combination={}, request=request, key=request_key(request),
               output_path=f"{label}.mp4", location=Location("m.yaml", 1, 1))


def done(of: Job) -> JobRecord:
    return JobRecord(campaign="spring", key=of.key, label=of.label, shot="s", request=of.request,
                     state=JobState.DONE, task_id="t", credits=200, cost_usd=Decimal("1.00"))


def plan_of(jobs: list[Job], records: list[JobRecord]) -> Plan:
    return make_plan(price_jobs(jobs, CATALOG), records, manifest_path=Path("m.yaml"), catalog=CATALOG,
                     budget_usd=None)


def rendered(plan: Plan, *, colour: bool) -> str:
    console = Console(width=200, force_terminal=colour, color_system="standard" if colour else None,
                      record=False, markup=False, emoji=False)
    with console.capture() as captured:
        console.print(display.plan_changes(plan), highlight=False, soft_wrap=True)
    return captured.get()


def test_removed_words_are_red_and_added_green_with_the_marks_kept() -> None:
    plan = plan_of([job("a", "slow dolly-in at dawn")], [done(job("a", "slow push-in at dawn"))])
    coloured = rendered(plan, colour=True)
    assert "\x1b[31m[-push-in-]\x1b[0m\x1b[32m{+dolly-in+}\x1b[0m" in coloured
    assert "    prompt: slow [-push-in-]{+dolly-in+} at dawn\n" in rendered(plan, colour=False)


def test_a_label_or_prompt_cannot_act_on_the_terminal() -> None:
    plan = plan_of([job("a\x1b[2J[red]x[/red]", "say \x1b]8;;http://evil\x07hi now")],
                   [done(job("a\x1b[2J[red]x[/red]", "say \x1b]8;;http://evil\x07hi then"))])
    shown = rendered(plan, colour=False)
    assert "\x1b" not in shown and "\x07" not in shown
    assert "[red]x[/red]" in shown  # markup shown as text, never interpreted


def test_the_terminal_shows_at_most_max_groups_and_points_at_the_json() -> None:
    count = display.MAX_GROUPS + 5
    olds = [job(f"j{i}", f"take {i} old") for i in range(count)]
    news = [job(f"j{i}", f"take {i} new{i}") for i in range(count)]  # every change different: one group each
    shown = rendered(plan_of(news, [done(j) for j in olds]), colour=False)
    assert shown.startswith(f"Changes: {count} changed job(s) in {count} group(s), 0 removed\n")
    assert shown.count("\n~ ") == display.MAX_GROUPS
    assert shown.endswith("and 5 more group(s) of changes: plan --json lists every job's\n")


def test_nothing_changed_says_so() -> None:
    a = job("a", "a lighthouse")
    assert rendered(plan_of([a], [done(a)]), colour=False) == "Changes: 0 changed job(s) in 0 group(s), 0 removed\n"
