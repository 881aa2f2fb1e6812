"""review: the review app for a campaign's takes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..errors import EXIT_OK
from ..safetext import one_line
from .group import cli
from .options import MANIFEST_ARGUMENT, PRICES_OPTION, STATE_OPTION

__all__ = ["review"]


@cli.command()
@MANIFEST_ARGUMENT
@click.option("--profile", default=None, metavar="NAME", help="Review the takes of this profile (e.g. draft).")
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Where to serve the review (default 127.0.0.1 and a free port; 0.0.0.0:PORT lets other "
                   "machines in).")
@click.option("--reviewer", default=None, metavar="NAME", help="Your name on each decision (default: $USER).")
@STATE_OPTION
@PRICES_OPTION
def review(manifest: Path, profile: str | None, listen: str | None, reviewer: str | None, state: str | None,
           prices: str | None) -> int:
    """Review a campaign's takes in the browser: approve, reject, pick, note (Ctrl-C stops).

    Serves a local web app and prints the link to open (it carries the session's key).
    Each decision is written to the ledger the moment it is made.
    """
    from ..pipeline import ReviewOptions, review_campaign

    options = ReviewOptions(manifest=manifest, state=state, prices=prices, profile=profile, listen=listen,
                            reviewer=reviewer)
    decided = review_campaign(options, announce=_announce_review)
    click.echo(f"review stopped; {decided} take(s) approved or rejected in the ledger")
    return EXIT_OK


def _announce_review(running: Any, plan: Any) -> None:
    takes = len(plan.jobs)
    click.echo(f"reviewing {one_line(plan.campaign)}: {takes} take(s); open this link in a browser:")
    click.echo(f"  {running.url}")
    click.echo("Ctrl-C stops the review (every decision is already in the ledger)")
    sys.stdout.flush()
