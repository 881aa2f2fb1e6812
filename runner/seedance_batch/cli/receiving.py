"""receive: APIDot's callbacks taken into a ledger by a long-lived service of their own."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import EXIT_OK
from ..safetext import one_line
from .group import cli
from .options import STATE_OPTION, VERIFY_OPTION

__all__ = ["receive"]


@cli.command()
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Where to listen (default 127.0.0.1:8787); the runs' public callback_url must reach it.")
@VERIFY_OPTION
@STATE_OPTION
def receive(listen: str | None, verify: tuple[str, ...], state: str | None) -> int:
    """Receive APIDot's callbacks into the ledger, for runs that cannot be reached (Ctrl-C stops).

    For runs started with --listen off that share this ledger (the same SQLite file, or
    one PostgreSQL database): each callback carrying a live run's secret is written into
    the ledger, and the run tracking that task reads it from there and checks the task's
    status at once. Refused requests are logged on stderr, one line per kind every few
    seconds, never with their body.
    """
    from ..receiving import ReceiveOptions, serve_receiver

    options = ReceiveOptions(state=state, listen=listen, verify=verify or ("secret-path",))
    stats = serve_receiver(options, announce=_announce)
    refused = ", ".join(f"{count} x {status}" for status, count in sorted(stats.refused.items()))
    click.echo(f"receiver stopped; {stats.stored} event(s) stored" + (f", refused {refused}" if refused else ""))
    return EXIT_OK


def _announce(url: str, ledger: Any) -> None:
    from ..ledger import shown_location

    click.echo(f"receiving callbacks on {one_line(url)} into {one_line(shown_location(str(ledger)))}")
    click.echo("runs with --listen off sharing this ledger pick the events up; Ctrl-C stops")
    sys.stdout.flush()
