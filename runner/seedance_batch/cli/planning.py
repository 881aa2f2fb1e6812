"""validate, plan, schema, prices: what a manifest implies and costs; nothing is spent."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .. import display
from ..errors import EXIT_OK
from ..models import load_catalog
from ..pipeline import check_plan_media, load_plan, view_campaign
from ..plan import check_budget, write_plan_json
from ..safetext import one_line
from .group import cli, console
from .options import (
    APPROVED_OPTION,
    MANIFEST_ARGUMENT,
    MAX_USD_OPTION,
    ONLY_OPTION,
    PRICES_OPTION,
    PROFILE_OPTION,
    RESUBMIT_UNKNOWN_OPTION,
    RETRY_FAILED_OPTION,
    STATE_OPTION,
)

__all__ = ["plan", "prices", "schema", "validate"]


@cli.command()
@MANIFEST_ARGUMENT
@PRICES_OPTION
def validate(manifest: Path, prices: str | None) -> int:
    """Check a manifest (schema, matrix, templates, model rules); spend nothing."""
    loaded, checked = load_plan(manifest, None, prices=prices)
    shots = len({planned.priced.job.shot for planned in checked.jobs})
    profiles = checked.profiles
    checked_too = "" if profiles is None else (
        f" in profile {profiles.profile}; every profile checked against the model rules ({', '.join(profiles.names)})")
    click.echo(f"{manifest}: ok: campaign {loaded.name!r}, {len(checked.jobs)} job(s) from {shots} shot(s)"
               + checked_too)
    return EXIT_OK


@cli.command()
@MANIFEST_ARGUMENT
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
@click.option("--report", "write_report", is_flag=True,
              help="Also write the plan's reports (reports/<campaign>/), over budget too.")
@click.option("--diff", "show_diff", is_flag=True,
              help="Show what changed in each changed job, field by field, and the jobs no longer in the manifest.")
@click.option("--check-media", "check_media", is_flag=True,
              help="Also check the source media URLs of the jobs to submit (reachable, type, size; HEAD only); "
                   "answers are cached in the ledger for an hour.")
@PROFILE_OPTION
@APPROVED_OPTION
@click.option("--compare", default=None, metavar="PROFILE",
              help="Also show what the same jobs cost in another profile (e.g. --profile draft --compare final).")
@ONLY_OPTION
@MAX_USD_OPTION
@RETRY_FAILED_OPTION
@RESUBMIT_UNKNOWN_OPTION
@STATE_OPTION
@PRICES_OPTION
def plan(manifest: Path, as_json: bool, write_report: bool, show_diff: bool, check_media: bool, state: str | None,
         compare: str | None, **flags: Any) -> int:
    """Show what a run would render and what it would cost; spend nothing.

    Compares the manifest with the ledger: new, changed, in-flight, done, failed,
    unknown, and removed. Exit 3 when the run would spend past the budget.
    """
    view = view_campaign(manifest, state, **flags)
    _check_compare(view.plan, compare)
    if as_json:
        stdout = sys.stdout.buffer  # JSON bytes as written (click.get_binary_stream is deprecated)
        write_plan_json(view.plan, stdout)
        stdout.flush()
    else:
        out = console()
        out.print(display.plan_table(view.plan, compare=compare))
        if show_diff:  # --json always carries the changes
            # soft_wrap: a diff line is never folded at the console's width (a piped log keeps it whole).
            out.print(display.plan_changes(view.plan), highlight=False, soft_wrap=True)
        out.print(display.plan_summary(view.plan, diff_shown=show_diff), markup=False, highlight=False)
    media = check_plan_media(view) if check_media else None
    if media is not None:
        click.echo(one_line(media.summary()), err=as_json)  # --json keeps stdout one JSON object
    if write_report:  # before the budget check: an over-budget plan is worth a report too
        from ..report import default_report_dir, report_line, write_reports

        paths = write_reports(view.plan, view.records, out_dir=default_report_dir(view.plan.campaign),
                              output_dir=Path(view.manifest.output_dir), manifest_path=view.manifest.path,
                              manifest_sha256=view.manifest.sha256)
        click.echo(report_line(paths), err=as_json)  # --json keeps stdout one JSON object
    if media is not None:
        media.raise_if_any()  # exit 2, after the plan and its report: what to fix, seen whole
    check_budget(view.plan)
    return EXIT_OK


def _check_compare(plan: Any, compare: str | None) -> None:
    """``--compare`` names another profile of the manifest (exit 2 otherwise)."""
    if compare is None:
        return
    from ..errors import UsageError

    names = plan.profiles.names if plan.profiles is not None else ()
    if compare not in names:
        known = f"profiles: {', '.join(names)}" if names else "the manifest declares no profiles"
        raise UsageError(f"--compare {one_line(repr(compare))} is not a profile of the manifest; {known}")


@cli.command()
def schema() -> int:
    """Print the manifest JSON Schema (for editors: yaml-language-server, VS Code)."""
    from .._data import data_path

    click.echo(data_path("manifest.schema.json").read_text(encoding="utf-8"), nl=False)
    return EXIT_OK


@cli.command()
@PRICES_OPTION
def prices(prices: str | None) -> int:
    """Print the price table in force, with its snapshot date."""
    console().print(display.prices_table(load_catalog(prices)))
    return EXIT_OK
