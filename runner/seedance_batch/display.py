"""Terminal views of plans and prices (rich tables); the CLI prints what these build.

Every outside text in them (campaign, shot and job names, model ids and provider names
from a --prices file, task ids, errors and paths from the ledger) goes in as
:class:`rich.text.Text` made :func:`~seedance_batch.safetext.one_line`: rich markup in
it is shown, not interpreted (``[/x]`` cannot raise, ``[link=...]`` makes no hyperlink),
and control and bidi characters are shown escaped. A plain ``str`` cell would be markup.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from .ledger import PLANNED
from .models import Catalog
from .plan import Change, Plan, PlannedJob
from .safetext import MAX_SERVICE_TEXT, bound, inert, one_line, service_text

__all__ = ["inert_json", "plan_summary", "plan_table", "prices_table", "show", "status_rows", "status_table"]

# Characters JSON leaves raw that a terminal may act on (DEL, C1 controls, bidi, invisible
# marks): json.dumps escapes the C0 controls itself.
_BEYOND_JSON = re.compile("[\x7f-\uffff]")


def show(text: object, limit: int | None = None) -> Text:
    """Outside text as a table cell or a line: one line, escaped, never markup; bounded when asked."""
    flat = one_line(str(text))
    return Text(bound(flat, limit) if limit else flat)


def inert_json(value: Any) -> str:
    """``value`` as indented JSON whose text a terminal shows but never acts on.

    Non-ASCII text stays readable; the characters :func:`~seedance_batch.safetext.inert`
    would escape become ``\\uXXXX`` escapes, so a parser still reads the exact value.
    """
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return _BEYOND_JSON.sub(_json_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    char = match.group(0)
    # Lone surrogates too: no terminal can encode them, and JSON spells them so.
    if inert(char) == char and not "\ud800" <= char <= "\udfff":
        return char
    return f"\\u{ord(char):04x}"


def _usd(value: Decimal) -> str:
    return f"${value:,.2f}"


@dataclass(slots=True)
class _Group:
    """One row of the plan table, summed: its jobs, and what this run renders of them and pays."""

    jobs: int = 0
    render: int = 0
    seconds: int = 0
    credits: int = 0
    usd: Decimal = Decimal(0)
    comparison_usd: Decimal = Decimal(0)

    def add(self, planned: PlannedJob) -> None:
        self.jobs += 1
        if planned.submit:
            job, cost = planned.priced.job, planned.priced.cost
            self.render += 1
            self.seconds += int(job.input["duration"])
            self.credits += cost.credits
            self.usd += cost.usd
            self.comparison_usd += cost.comparison_usd


def plan_table(plan: Plan) -> Table:
    """One row per (shot, model, resolution): jobs, what this run renders, and its cost."""
    groups: dict[tuple[str, str, str], _Group] = defaultdict(_Group)
    for planned in plan.jobs:
        job = planned.priced.job
        groups[(job.shot, job.model, str(job.input["resolution"]))].add(planned)
    table = Table(title=Text(f"Plan for campaign {one_line(plan.campaign)}"), title_justify="left")
    for heading in ("shot", "model", "resolution"):
        table.add_column(heading)
    for heading in ("jobs", "to render", "seconds", "credits", "USD"):
        table.add_column(heading, justify="right")
    table.add_column(show(f"{plan.catalog.comparison} USD"), justify="right")
    for (shot, model, resolution), group in groups.items():
        table.add_row(show(shot), show(model), show(resolution), str(group.jobs), str(group.render),
                      str(group.seconds), f"{group.credits:,}", _usd(group.usd), _usd(group.comparison_usd))
    table.add_section()
    total_seconds = sum(int(j.priced.job.input["duration"]) for j in plan.jobs if j.submit)
    table.add_row(
        "total", "", "", str(len(plan.jobs)), str(len(plan.to_submit)), str(total_seconds),
        f"{plan.credits:,}", _usd(plan.usd), _usd(plan.comparison_usd), style="bold",
    )
    return table


def plan_summary(plan: Plan) -> str:
    """The one-paragraph verdict under the table: what changes, what it costs, the budget.

    Plain text (print it with ``markup=False``); the price file's names in it are escaped.
    """
    counts = plan.counts()
    parts = [f"{counts[c.value]} {c.value}" for c in Change if counts[c.value]]
    lines = [f"Jobs: {', '.join(parts) or 'none'}."]
    lines.append(
        f"This run would submit {len(plan.to_submit)} job(s) for {plan.credits:,} credits = {_usd(plan.usd)} "
        f"({one_line(plan.catalog.comparison)} would charge {_usd(plan.comparison_usd)}); "
        f"prices of {one_line(plan.catalog.snapshot_date)}."
    )
    if plan.spent_usd:
        lines.append(f"Already spent on this campaign: {_usd(plan.spent_usd)}.")
    if plan.budget_usd is not None:
        verdict = "within" if plan.within_budget else "OVER"
        lines.append(f"Budget {_usd(plan.budget_usd)}: {verdict} budget.")
    if counts[Change.UNKNOWN.value]:
        lines.append("Unknown jobs may already be billed: check them, then use --resubmit-unknown to render them again.")
    if counts[Change.FAILED.value]:
        lines.append("Failed jobs are not retried unless you pass --retry-failed.")
    return "\n".join(lines)


def prices_table(catalog: Catalog) -> Table:
    """The price table in force, per second of video, with its snapshot date and source."""
    table = Table(
        title=show(f"{catalog.provider} prices per second of video, snapshot {catalog.snapshot_date} "
                   f"(1 credit = ${catalog.credit_usd})"),
        caption=show(f"from {catalog.source}"),
        title_justify="left",
    )
    table.add_column("model")
    table.add_column("resolution")
    table.add_column("video input")
    table.add_column("credits/s", justify="right")
    table.add_column("USD/s", justify="right")
    table.add_column(show(f"{catalog.comparison} USD/s"), justify="right")
    for rules in catalog.models.values():
        for resolution in rules.resolutions:
            for video_input in (True, False):
                rate = rules.rates[(resolution, video_input)]
                table.add_row(
                    show(rules.id), show(resolution), "yes" if video_input else "no", str(rate.credits_per_second),
                    f"{(catalog.credit_usd * rate.credits_per_second).normalize():f}", f"{rate.comparison_usd_per_second:g}",
                )
    return table


def status_rows(plan: Plan, output_dir: Path) -> list[dict[str, Any]]:
    """The ledger's view of each job of the manifest (``status`` and ``status --json``)."""
    rows = []
    for planned in plan.jobs:
        rec = planned.record  # this job's own row (a changed job's old row is planned.previous)
        rows.append({
            "label": planned.label,
            "state": rec.state.value if rec else PLANNED,
            "task_id": rec.task_id if rec else None,
            "cost_usd": str(rec.cost_usd if rec else planned.priced.cost.usd),
            "file": str(output_dir / rec.output_path) if rec and rec.sha256 and rec.output_path else None,
            # Scrubbed of credential shapes and bounded: a ledger of an older version may hold
            # a 20 MB message or an echoed key. The task id stays exact (it finds the task).
            "error": service_text(rec.error_message) if rec and rec.error_message else None,
        })
    return rows


def status_table(campaign: str, ledger: str, rows: list[dict[str, Any]]) -> Table:
    """One line per job: label, state, task id, cost, file (or why it failed)."""
    table = Table("label", "state", "task id", "cost", "file or error", title=show(f"{campaign} ({ledger})"),
                  title_justify="left")
    for row in rows:
        table.add_row(show(row["label"]), show(row["state"]), show(row["task_id"] or "", MAX_SERVICE_TEXT),
                      show(f"${row['cost_usd']}"), show(row["file"] or row["error"] or "", MAX_SERVICE_TEXT))
    return table
