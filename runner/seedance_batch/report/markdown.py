"""summary.md: a short Markdown summary for a pull request comment or a CI step summary.

Totals, cost against the budget, and the failures (at most :data:`MAX_FAILURES`,
the full list is in report.html). Every cell is escaped: a message cannot break
the table or inject HTML into the page that renders it.
"""

from __future__ import annotations

from .data import STATES, Report, Totals
from .fmt import PROBLEM_REASONS, duration, state_word, usd

__all__ = ["MAX_FAILURES", "cost_against_budget", "report_markdown"]

MAX_FAILURES = 20


def report_markdown(report: Report) -> str:
    """The summary as Markdown text."""
    lines = [f"### seedance-batch: campaign `{_code(report.campaign)}`", ""]
    lines += _totals_lines(report)
    lines += ["", _provenance(report)]
    lines += _failure_lines(report)
    return "\n".join(lines) + "\n"


def _totals_lines(report: Report) -> list[str]:
    totals = report.totals
    states = " · ".join(
        f"{totals.by_state[s]} {state_word(s)}" for s in STATES if totals.by_state.get(s)
    )
    return [
        f"**{totals.jobs} jobs**: {states or 'none'}  ",
        f"**Video**: {totals.seconds_rendered} s rendered of {totals.seconds_planned} s planned  ",
        f"**Cost**: {cost_against_budget(totals)} · whole campaign at list price "
        f"{usd(totals.usd_planned)} ({totals.credits_planned:,} credits) · "
        f"{_cell(report.comparison)} would charge {usd(totals.fal_usd)}",
    ]


def cost_against_budget(totals: Totals) -> str:
    """``$10.00 spent + $8.00 to render = $18.00 of $30.00 budget (within budget)``."""
    text = f"{usd(totals.usd_spent)} spent"
    if totals.usd_to_render:
        text += f" + {usd(totals.usd_to_render)} to render = {usd(totals.usd_spent + totals.usd_to_render)}"
    if totals.budget_usd is None:
        return f"{text}, no budget set"
    verdict = "within budget" if totals.within_budget else "**OVER budget**"
    return f"{text} of {usd(totals.budget_usd)} budget ({verdict})"


def _provenance(report: Report) -> str:
    run = f", run took {duration(report.duration_seconds)}" if report.duration_seconds is not None else ""
    return (
        f"Manifest `{_code(report.manifest_path)}` (sha256 `{report.manifest_sha256[:12]}`), "
        f"prices of {report.prices_snapshot}, report of {report.generated_at}{run}."
    )


def _failure_lines(report: Report) -> list[str]:
    problems = [row for row in report.rows if row.problem]
    if not problems:
        return []
    lines = ["", f"#### Failures ({len(problems)})", "", "| job | state | attempts | message |", "|---|---|---:|---|"]
    for row in problems[:MAX_FAILURES]:
        message = row.error_message or PROBLEM_REASONS[row.state]
        lines.append(f"| `{_code(row.label)}` | {state_word(row.state)} | {row.attempts} | {_cell(message)} |")
    if len(problems) > MAX_FAILURES:
        lines += ["", f"_and {len(problems) - MAX_FAILURES} more: see report.html_"]
    return lines


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped, no raw HTML."""
    flat = " ".join(text.split())
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _code(text: str) -> str:
    """Text safe inside a single-backtick code span (shown literally, so no entities)."""
    return " ".join(text.split()).replace("`", "'").replace("|", "\\|")
