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
from .plan_diff import ADD, DROP, GAP, Differ, FieldChange, diff_plan
from .safetext import MAX_SERVICE_TEXT, bound, inert, one_line, service_text

__all__ = [
    "MAX_GROUPS", "MAX_REMOVED", "inert_json", "plan_changes", "plan_summary", "plan_table", "prices_table",
    "profile_line", "profile_lines", "selection_line", "show", "status_rows", "status_table",
]

# At most this many groups of changes and removed jobs on a terminal (`plan --json` has them all).
MAX_GROUPS = 100
MAX_REMOVED = 20
# How a word diff looks on a terminal with colour: the markers stay, so it reads without.
_STYLES = {DROP: "red", ADD: "green", GAP: "dim"}
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


def plan_table(plan: Plan, *, compare: str | None = None) -> Table:
    """One row per (shot, model, resolution): jobs, what this run renders, and its cost.

    ``compare`` (a profile's name, ``plan --compare``) adds a column: what the same jobs
    cost in that profile (each job's counterpart there).
    """
    groups: dict[tuple[str, str, str], _Group] = defaultdict(_Group)
    other: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for planned in plan.jobs:
        job = planned.priced.job
        row = (job.shot, job.model, str(job.input["resolution"]))
        groups[row].add(planned)
        if compare is not None and plan.profiles is not None:
            found = plan.profiles.counterpart(job.take_label, compare)
            other[row] += found.cost.usd if found is not None else Decimal(0)
    title = f"Plan for campaign {one_line(plan.campaign)}"
    if plan.profiles is not None:
        title += f", profile {one_line(plan.profiles.profile)}"
    table = Table(title=Text(title), title_justify="left")
    for heading in ("shot", "model", "resolution"):
        table.add_column(heading)
    for heading in ("jobs", "to render", "seconds", "credits", "USD"):
        table.add_column(heading, justify="right")
    table.add_column(show(f"{plan.catalog.comparison} USD"), justify="right")
    if compare is not None:
        table.add_column(show(f"{compare} USD"), justify="right")
    for key, group in groups.items():
        extra = [_usd(other[key])] if compare is not None else []
        table.add_row(*(show(part) for part in key), str(group.jobs), str(group.render),
                      str(group.seconds), f"{group.credits:,}", _usd(group.usd), _usd(group.comparison_usd), *extra)
    table.add_section()
    total_seconds = sum(int(j.priced.job.input["duration"]) for j in plan.jobs if j.submit)
    table.add_row(
        "total", "", "", str(len(plan.jobs)), str(len(plan.to_submit)), str(total_seconds),
        f"{plan.credits:,}", _usd(plan.usd), _usd(plan.comparison_usd),
        *([_usd(sum(other.values(), Decimal(0)))] if compare is not None else []), style="bold",
    )
    return table


def plan_summary(plan: Plan, *, diff_shown: bool = False) -> str:
    """The one-paragraph verdict under the table: what changes, what it costs, the budget.

    Plain text (print it with ``markup=False``); the price file's names in it are escaped.
    Unless ``diff_shown``, changed or removed jobs point at ``plan --diff``.
    """
    counts = plan.counts()
    parts = [f"{counts[c.value]} {c.value}" for c in Change if counts[c.value]]
    lines = profile_lines(plan)
    if plan.only is not None:
        lines.append(selection_line(plan))
    see = " (plan --diff shows what changed)" if (counts[Change.CHANGED.value] or plan.removed) and not diff_shown else ""
    lines.append(f"Jobs: {', '.join(parts) or 'none'}.{see}")
    if plan.removed:
        lines.append(f"{len(plan.removed)} job(s) rendered before are no longer in the manifest (removed): "
                     "the ledger keeps them, nothing is deleted.")
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


def profile_lines(plan: Plan) -> list[str]:
    """What the plan says of its profiles: the one in force, each one's whole cost, the review's approvals."""
    view = plan.profiles
    if view is None:
        return []
    lines = [profile_line(plan)]
    costs = "; ".join(f"{one_line(name)}{' (in force)' if name == view.profile else ''} "
                      f"{total.jobs} job(s) = {_usd(total.usd)}" for name, total in view.totals.items())
    lines.append(f"Each profile in full: {costs}.")
    if view.promoted is None and (view.approved or view.chosen_by == "--profile"):
        promotion = view.promotion_cost()
        lines.append(f"Review: {len(view.approved)} take(s) approved, {len(view.picked)} picked; --approved would "
                     f"plan {promotion.jobs} of them for {_usd(promotion.usd)} in {one_line(view.profile)}.")
    return lines


def profile_line(plan: Plan) -> str:
    """``Profile final (--profile): ...``, and what ``--approved`` selected, or that nothing is approved."""
    view = plan.profiles
    assert view is not None
    line = f"Profile {one_line(view.profile)} ({view.chosen_by})"
    if view.promoted is None:
        return line + f": {view.takes} job(s)."
    if not view.promoted:
        return (line + ": --approved, and no take is approved in the review yet "
                f"(seedance-batch review {one_line(str(plan.manifest_path))}); nothing to render, nothing is spent.")
    picks = f", {len(view.picked)} picked" if view.picked else ""
    return (line + f": --approved selects {len(view.promoted)} of {view.takes} take(s) "
            f"({len(view.approved)} approved{picks}; a pick is its combination's only take): the plan, "
            "its cost and the budget check cover only them.")


def selection_line(plan: Plan) -> str:
    """``11 of 22 jobs selected by --only 'hero/*'; ...`` (plain text, the patterns escaped)."""
    assert plan.only is not None
    return (f"{one_line(plan.only.summary(len(plan.jobs), plan.manifest_jobs))}: "
            "the plan, its cost and the budget check cover only them.")


def plan_changes(plan: Plan) -> Text:
    """``plan --diff``: each group of changed jobs with its fields and cost, then the removed jobs.

    Terraform's marks: ``~`` a changed job, ``-`` a removed one (never deleted). Prompt
    words removed read ``[-so-]`` (red on a terminal with colour), added ``{+so+}``
    (green). Credential-shaped text and URL query strings are hidden, as in reports;
    a private job's prompt reads ``prompt changed (private)``.
    """
    # Imported here: the report package brings Jinja, which `plan` without --diff never needs.
    from .report.redact import Redactor

    redactor = Redactor()
    diff = diff_plan(plan, Differ(clean=lambda text: redactor.text(text) or ""))
    out = Text()
    out.append(f"Changes: {diff.changed_jobs} changed job(s) in {len(diff.groups)} group(s), "
               f"{len(diff.removed)} removed\n", style="bold")
    for group in diff.groups[:MAX_GROUPS]:
        out.append("~ ", style="yellow")
        out.append_text(show(group.heading()))
        out.append("\n")
        for change in group.changes:
            out.append("    ")
            out.append_text(_change_text(change))
            out.append("\n")
        out.append(f"    cost: {group.cost()}\n", style="dim")
    if len(diff.groups) > MAX_GROUPS:
        out.append(f"and {len(diff.groups) - MAX_GROUPS} more group(s) of changes: plan --json lists every job's\n")
    for removed in diff.removed[:MAX_REMOVED]:
        out.append("- ", style="red")
        out.append_text(show(removed.summary()))
        out.append(": no longer in the manifest; kept in the ledger\n")
    if len(diff.removed) > MAX_REMOVED:
        out.append(f"and {len(diff.removed) - MAX_REMOVED} more removed job(s): plan --json lists them all\n")
    out.rstrip()
    return out


def _change_text(change: FieldChange) -> Text:
    """One field's change on one line, the words removed and added in colour."""
    if change.private or not change.text or not change.words:
        return show(change.summary())
    line = Text(f"{change.name}: ")
    for kind, text in change.words:
        flat = one_line(text)
        if kind == DROP:
            line.append(f"[-{flat}-]", style=_STYLES[DROP])
        elif kind == ADD:
            line.append(f"{{+{flat}+}}", style=_STYLES[ADD])
        else:
            line.append(flat, style=_STYLES.get(kind))
    return line


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
            "take": planned.priced.job.take,  # 1 without takes
            "profile": planned.priced.job.profile,  # None without profiles
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
