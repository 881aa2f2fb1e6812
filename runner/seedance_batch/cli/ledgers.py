"""ledger copy: move a ledger's history between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import click

from ..errors import EXIT_OK
from ..safetext import one_line
from .group import cli

__all__ = ["ledger_copy", "ledger_group"]


@cli.group("ledger")
def ledger_group() -> None:
    """Work on a ledger itself (a SQLite file or a postgresql:// URL)."""


@ledger_group.command("copy")
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@click.option("--campaign", "campaigns", multiple=True, metavar="NAME",
              help="Copy only this campaign (repeatable; default: every campaign of SRC).")
def ledger_copy(source: str, destination: str, campaigns: tuple[str, ...]) -> int:
    """Copy campaigns' history from SRC into DST (e.g. a SQLite file into PostgreSQL, or back).

    Jobs keep their state, task ids and spend; events keep their order. A row DST has
    already and that differs refuses the copy of that campaign (nothing is overwritten);
    copying twice changes nothing. Each campaign is read back from DST and checked row
    for row (counts and a sha256 digest). SRC is only read.
    """
    from ..ledger import shown_location
    from ..ledger.copying import copy_between

    if not copy_between(source, destination, campaigns or None, done=_copied):
        click.echo(f"nothing to copy: {one_line(shown_location(source))} holds no campaign")
    return EXIT_OK


def _copied(where: str, done: Any) -> None:
    counts = done.counts
    click.echo(f"{one_line(done.campaign)}: {done.jobs} job(s) and {done.events} event(s) in {one_line(where)}: "
               f"{counts.jobs_added} job(s) and {counts.events_added} event(s) copied, {counts.jobs_same} job(s) "
               f"and {counts.events_same} event(s) there already; checked (sha256 {done.digest[:16]})")
