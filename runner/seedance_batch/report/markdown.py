"""summary.md: a short Markdown summary for a pull request comment or a CI step summary.

Totals, cost against the budget, what changed against the ledger (each group of
changed jobs with its fields and cost, and the jobs no longer in the manifest: at most
:data:`MAX_CHANGES` lines, ``plan --json`` has them all), and the failures (at most
:data:`MAX_FAILURES`, the full list is in report.html). With ``--only`` it says which
jobs it covers.

Outside text (the campaign and job names, the service's messages, the manifest path,
the price file's names) is shown in code spans, which GitHub renders literally: no
link, image, @mention, emphasis or HTML can come out of it, and a bare URL is not
autolinked. Control and bidi characters in it are shown escaped
(:func:`~seedance_batch.safetext.one_line`). Each such text is bounded, and so is the
document: GitHub refuses a comment over 65,536 characters, so failure rows stop before
:data:`MAX_SUMMARY`, saying how many were left out and pointing at report.html.
"""

from __future__ import annotations

import re

from ..plan_diff import ChangeGroup
from ..safetext import bound, one_line
from .data import STATES, Report, ReportRow, Totals
from .fmt import PROBLEM_REASONS, duration, state_word, usd

__all__ = ["MAX_CHANGES", "MAX_FAILURES", "MAX_SUMMARY", "cost_against_budget", "report_markdown"]

MAX_FAILURES = 20
# Groups of changed jobs plus removed jobs listed, at most; and the room they may take,
# so that the failures, which matter more after a run, always have some.
MAX_CHANGES = 20
MAX_CHANGES_ROOM = 20_000
# GitHub refuses a pull-request comment over 65,536 characters; the margin is for what a
# workflow adds around the summary (a heading, a link to the run).
MAX_SUMMARY = 60_000
# The longest outside text one failure row shows (a label, a message), escapes included:
# twenty full rows stay far under MAX_SUMMARY and each still reads as a sentence.
MAX_CELL = 600
# The longest name in the header (campaign, manifest path, price snapshot, provider).
MAX_NAME = 200
# Room kept for the closing "and N more" line when rows are dropped for length.
_TAIL_ROOM = 80
# A run of backticks (a code span's fence must be longer than any run inside it), and a
# pipe with the backslashes before it (a table cell needs the pipe escaped).
_BACKTICKS = re.compile("`+")
_PIPE = re.compile(r"(\\*)\|")


def report_markdown(report: Report) -> str:
    """The summary as Markdown text, never longer than :data:`MAX_SUMMARY` characters."""
    lines = [f"### seedance-batch: campaign {_code(report.campaign, MAX_NAME)}", ""]
    lines += _totals_lines(report)
    lines += ["", _provenance(report)]
    head = "\n".join(lines) + "\n" + _changes(report, MAX_CHANGES_ROOM)
    return head + _failures(report, MAX_SUMMARY - len(head))


def _totals_lines(report: Report) -> list[str]:
    totals = report.totals
    states = " · ".join(
        f"{totals.by_state[s]} {state_word(s)}" for s in STATES if totals.by_state.get(s)
    )
    selection = [f"**Selection**: {_code(report.selection, MAX_NAME)}  "] if report.selection else []
    profile = [f"**Profile**: {_code(report.profile, MAX_NAME)}  "] if report.profile else []
    return [
        *selection,
        *profile,
        *_review_line(report),
        f"**{totals.jobs} jobs**: {states or 'none'}  ",
        f"**Video**: {totals.seconds_rendered} s rendered of {totals.seconds_planned} s planned  ",
        f"**Cost**: {cost_against_budget(totals)} · whole campaign at list price "
        f"{usd(totals.usd_planned)} ({totals.credits_planned:,} credits) · "
        f"{_code(report.comparison, MAX_NAME)} would charge {usd(totals.comparison_usd)}",
    ]


def _review_line(report: Report) -> list[str]:
    """``**Review**: 12 approved (4 picked) · 3 rejected · 5 undecided`` when any take was decided."""
    if not any(row.verdict for row in report.rows):
        return []
    counts = {word: sum(1 for row in report.rows if row.verdict == word) for word in ("approved", "rejected")}
    picked = sum(1 for row in report.rows if row.picked)
    undecided = len(report.rows) - counts["approved"] - counts["rejected"]
    return [f"**Review**: {counts['approved']} approved ({picked} picked) · {counts['rejected']} rejected · "
            f"{undecided} undecided  "]


def cost_against_budget(totals: Totals) -> str:
    """``$10.00 spent + $8.00 to render = $18.00 of $30.00 budget (within budget)``."""
    text = f"{usd(totals.usd_spent)} spent"
    if totals.usd_refunded:  # failed tasks the service refunded: not spent
        text += f" (after {usd(totals.usd_refunded)} refunded)"
    if totals.usd_to_render:
        text += f" + {usd(totals.usd_to_render)} to render = {usd(totals.usd_spent + totals.usd_to_render)}"
    if totals.budget_usd is None:
        return f"{text}, no budget set"
    verdict = "within budget" if totals.within_budget else "**OVER budget**"
    return f"{text} of {usd(totals.budget_usd)} budget ({verdict})"


def _provenance(report: Report) -> str:
    run = f", run took {duration(report.duration_seconds)}" if report.duration_seconds is not None else ""
    return (
        f"Manifest {_code(report.manifest_path, MAX_NAME)} (sha256 `{report.manifest_sha256[:12]}`), "
        f"prices of {_code(report.prices_snapshot, MAX_NAME)}, report of {report.generated_at}{run}."
    )


def _changes(report: Report, room: int) -> str:
    """What changed against the ledger, as many groups and removed jobs as fit in ``room`` characters."""
    diff = report.diff
    if not diff.groups and not diff.removed:
        return ""
    items = [_group_lines(group) for group in diff.groups]
    items += [[f"- removed {_code(job.label, MAX_CELL)} ({state_word(job.state)}, {usd(job.spent_usd)} spent): "
               "no longer in the manifest; kept in the ledger, nothing is deleted"] for job in diff.removed]
    lines = ["", f"#### Changes ({diff.changed_jobs} changed, {len(diff.removed)} removed)", ""]
    used = sum(len(line) + 1 for line in lines) + _TAIL_ROOM
    shown = 0
    for item in items[:MAX_CHANGES]:
        size = sum(len(line) + 1 for line in item)
        if used + size > room:
            break
        lines += item
        used += size
        shown += 1
    if shown < len(items):
        lines += ["", f"_and {len(items) - shown} more: `seedance-batch plan --json` lists every change_"]
    return "\n".join(lines) + "\n"


def _group_lines(group: ChangeGroup) -> list[str]:
    """``- `hero/en-US/9:16` and 10 more job(s): $15.40 ...`` and one sub-item per changed field."""
    more = group.jobs - 1
    head = f"- {_code(group.first, MAX_CELL)}" + (f" and {more} more job(s)" if more else "")
    fields = [f"  - {change.summary() if change.private else _code(change.summary(), MAX_CELL)}"
              for change in group.changes]
    return [f"{head}: {group.cost()}", *fields]


def _failures(report: Report, room: int) -> str:
    """The failures table, as many rows as fit in ``room`` characters (at most MAX_FAILURES)."""
    problems = [row for row in report.rows if row.problem]
    if not problems:
        return ""
    lines = ["", f"#### Failures ({len(problems)})", "", "| job | state | attempts | message |", "|---|---|---:|---|"]
    used = sum(len(line) + 1 for line in lines) + _TAIL_ROOM
    shown = 0
    for row in problems[:MAX_FAILURES]:
        line = _failure_row(row)
        if used + len(line) + 1 > room:
            break
        lines.append(line)
        used += len(line) + 1
        shown += 1
    if shown < len(problems):
        lines += ["", f"_and {len(problems) - shown} more: see report.html_"]
    return "\n".join(lines) + "\n"


def _failure_row(row: ReportRow) -> str:
    # Our own reason reads as prose; the service's message is outside text, hence code.
    message = _code(row.error_message, MAX_CELL, table=True) if row.error_message else PROBLEM_REASONS[row.state]
    return f"| {_code(row.label, MAX_CELL, table=True)} | {state_word(row.state)} | {row.attempts} | {message} |"


def _code(text: str, limit: int, *, table: bool = False) -> str:
    """``text`` as a Markdown code span: one line, escaped, bounded, shown literally.

    The fence is longer than any run of backticks inside (padded with a space when the
    text starts or ends with one), so no text can close it early. In a ``table`` cell a
    pipe is escaped with an odd number of backslashes before it: GitHub (cmark-gfm) reads
    two backslashes as an escaped backslash, so a backslash of the text's own must not
    pair with the escape (it then shows doubled, which is harmless).
    """
    flat = bound(one_line(" ".join(text.split())), limit)
    if not flat:
        return ""
    if table:
        flat = _PIPE.sub(lambda m: m.group(1) + "\\" * (len(m.group(1)) % 2) + "\\|", flat)
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"
