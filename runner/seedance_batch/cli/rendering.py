"""run: render a campaign (submit, track, download, report)."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from .. import display
from ..errors import EXIT_OK
from ..safetext import one_line
from .group import cli
from .options import (
    APPROVED_OPTION,
    MANIFEST_ARGUMENT,
    MAX_USD_OPTION,
    ONLY_OPTION,
    PRICES_OPTION,
    PROFILE_OPTION,
    REPORT_DIR_OPTION,
    RESUBMIT_UNKNOWN_OPTION,
    RETRY_FAILED_OPTION,
    STATE_OPTION,
    VERIFY_OPTION,
)

__all__ = ["run"]


@cli.command()
@MANIFEST_ARGUMENT
@click.option("--simulate", is_flag=True, help="Render against the local simulator: free, no key, 50x faster.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before spending above run.confirm_above_usd.")
@RETRY_FAILED_OPTION
@RESUBMIT_UNKNOWN_OPTION
@MAX_USD_OPTION
# The ranges of the manifest's run: keys (schemas/manifest.schema.json): inf or 1e300 would
# hang a run as surely as a typo in the manifest.
@click.option("--submits-per-minute", type=click.FloatRange(min=0, min_open=True, max=6000), default=None)
@click.option("--status-per-minute", type=click.FloatRange(min=0, min_open=True, max=6000), default=None)
@click.option("--max-in-flight", type=click.IntRange(1, 1000), default=None)
@click.option("--max-attempts", type=click.IntRange(1, 100), default=None)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True, max=259200), default=None,
              help="Seconds per job before timed_out.")
@REPORT_DIR_OPTION
@click.option("--time-scale", type=click.FloatRange(1e-6, 1000.0), default=None, metavar="FACTOR",  # as simulate's
              help="The service's clock runs this much faster (a simulator started with --time-scale); "
                   "scales rate limits, timeouts and polling. Default 1, or 0.02 with --simulate.")
@click.option("--listen", default=None, metavar="HOST:PORT|off",
              help="Where the webhook receiver listens when run.callback_url is set (default 127.0.0.1:8787); "
                   "off: none here, a `seedance-batch receive` sharing the ledger takes the callbacks.")
@VERIFY_OPTION
@click.option("--check-media/--no-check-media", "check_media", default=True, show_default=True,
              help="Check the source media URLs (reachable, type, size) before submitting anything.")
@PROFILE_OPTION
@APPROVED_OPTION
@ONLY_OPTION
@STATE_OPTION
@PRICES_OPTION
def run(manifest: Path, simulate: bool, yes: bool, retry_failed: bool, resubmit_unknown: bool,
        max_usd: Decimal | None, state: str | None, prices: str | None, report_dir: str | None,
        time_scale: float | None, listen: str | None, only: tuple[str, ...], check_media: bool,
        verify: tuple[str, ...], profile: str | None, approved: bool, **overrides: Any) -> int:
    """Render a campaign: submit, track, download, report. Resumable: run it again."""
    from .. import pipeline
    from ..run.progress import choose_progress

    _quiet_retries()
    options = pipeline.RunOptions(
        manifest=manifest, state=state, prices=prices, simulate=simulate, yes=yes, retry_failed=retry_failed,
        resubmit_unknown=resubmit_unknown, max_usd=max_usd, report_dir=report_dir, time_scale=time_scale,
        listen=listen, overrides=overrides, only=only, check_media=check_media, verify=verify or ("secret-path",),
        profile=profile, approved=approved,
    )
    outcome = pipeline.run_manifest(options, confirm=_confirm_spend, progress=choose_progress())
    for rec in outcome.recovered:
        click.echo(f"{one_line(rec.label)}: a crashed run left its submit unanswered; now unknown "
                   "(see --resubmit-unknown)", err=True)
    result = outcome.result
    counts = ", ".join(f"{n} {state}" for state, n in sorted(result.counts().items())) or "nothing to do"
    if outcome.plan.only is not None:
        click.echo(display.selection_line(outcome.plan))
    if outcome.plan.profiles is not None:
        click.echo(display.profile_line(outcome.plan))
    pacing = result.pacing()  # the 429s the service answered, and the rate the run learned from them
    click.echo(f"{one_line(outcome.plan.campaign)}: {counts}; submitted {result.submitted} this run; "
               f"spent ${Decimal(result.stats['spent_usd']):.2f} in total" + (f"; {pacing}" if pacing else ""))
    if outcome.reports is not None:
        click.echo(f"reports: {one_line(str(outcome.reports.folder))}")
    ending = result.ending()
    if ending is not None:
        raise ending
    return EXIT_OK


def _quiet_retries() -> None:
    """The application's choice for stamina's retry instrumentation: none.

    Every retry is already recorded in the ledger and shown on the progress lines;
    stamina's own hooks (a logging warning, or structlog and Prometheus when installed)
    would print a second, unscrubbed account of them.
    """
    import stamina.instrumentation

    stamina.instrumentation.set_on_retry_hooks([])


def _confirm_spend(plan: Any, threshold: Decimal) -> bool:
    """Ask on a terminal before a run spends more than ``threshold``; elsewhere, go ahead."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return True
    return click.confirm(f"This run will spend up to ${plan.usd:.2f} (over ${threshold:.2f}). Go ahead?",
                         default=False, err=True)
