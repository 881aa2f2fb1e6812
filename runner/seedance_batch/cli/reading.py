"""status and report: what the ledger says of a campaign; they only read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .. import display
from ..errors import EXIT_OK
from ..pipeline import view_campaign
from .group import cli, console
from .options import MANIFEST_ARGUMENT, ONLY_OPTION, PRICES_OPTION, PROFILE_OPTION, REPORT_DIR_OPTION, STATE_OPTION

__all__ = ["report", "status"]


@cli.command()
@MANIFEST_ARGUMENT
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@PROFILE_OPTION
@ONLY_OPTION
@STATE_OPTION
@PRICES_OPTION
def status(manifest: Path, as_json: bool, state: str | None, prices: str | None, only: tuple[str, ...],
           profile: str | None) -> int:
    """Show the ledger's view of a campaign: each job's state, task id, cost and file.

    Only reads (a ledger on a read-only file system too): a job left "submitting"
    is shown as it stands, since a run may be submitting it right now; the next run
    turns a crashed one into "unknown".
    """
    view = view_campaign(manifest, state, prices=prices, only=only, profile=profile)
    rows = display.status_rows(view.plan, Path(view.manifest.output_dir))
    decided = _add_decisions(view, rows)
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["state"]] = totals.get(row["state"], 0) + 1
    if as_json:
        click.echo(display.inert_json({  # C1 and bidi escaped too, as JSON escapes
            "campaign": view.plan.campaign, "ledger": view.ledger_path, "jobs": rows, "totals": totals,
            "spent_usd": str(view.plan.spent_usd),
            "selection": None if view.plan.only is None else {
                "only": list(view.plan.only.patterns), "jobs": len(view.plan.jobs), "of": view.plan.manifest_jobs},
        }))
        return EXIT_OK
    console().print(display.status_table(view.plan.campaign, view.ledger_path, rows))
    if view.plan.only is not None:
        click.echo(display.selection_line(view.plan))
    click.echo(", ".join(f"{n} {s}" for s, n in totals.items()) + f"; spent ${view.plan.spent_usd:.2f}")
    if decided:
        click.echo("review: " + ", ".join(f"{n} {word}" for word, n in decided.items()))
    return EXIT_OK


def _add_decisions(view: Any, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Each status row gains its take's review decision (None: undecided); the counts of verdicts and picks."""
    from ..ledger.decisions import decision_json

    by_key = {decision.key: decision for decision in view.decisions}
    counts: dict[str, int] = {}
    for planned, row in zip(view.plan.jobs, rows, strict=True):
        found = by_key.get(planned.priced.job.key)
        row["decision"] = None if found is None else decision_json(found)
        for word in ((found.verdict.value, "picked" if found.picked else "") if found else ()):
            if word and word != "undecided":
                counts[word] = counts.get(word, 0) + 1
    return counts


@cli.command()
@MANIFEST_ARGUMENT
@REPORT_DIR_OPTION
@PROFILE_OPTION
@ONLY_OPTION
@STATE_OPTION
@PRICES_OPTION
def report(manifest: Path, report_dir: str | None, state: str | None, prices: str | None,
           only: tuple[str, ...], profile: str | None) -> int:
    """Rebuild the reports from the ledger: any time, also mid-run or after a crash.

    Writes report.html, report.csv, report.json, junit.xml and summary.md. Only reads
    the ledger (a crashed submit is reported as it stands; the next run recovers it).
    """
    from ..report import default_report_dir, report_line, write_reports

    view = view_campaign(manifest, state, prices=prices, only=only, profile=profile)
    out_dir = Path(report_dir) if report_dir else default_report_dir(view.plan.campaign)
    paths = write_reports(view.plan, view.records, out_dir=out_dir, output_dir=Path(view.manifest.output_dir),
                          manifest_path=view.manifest.path, manifest_sha256=view.manifest.sha256)
    click.echo(report_line(paths))
    return EXIT_OK
