"""The ``seedance-batch`` group, its console and its entry point: errors become one line each and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
from rich.console import Console

from .. import __version__
from ..errors import EXIT_INTERRUPTED, EXIT_USAGE, SeedanceError, exit_code
from ..safetext import one_line

__all__ = ["cli", "console", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="seedance-batch")
def cli() -> None:
    """Render Seedance 2 video campaigns from a YAML manifest.

    \b
    seedance-batch validate MANIFEST     check a manifest, spend nothing
    seedance-batch plan MANIFEST         what would be rendered, and what it costs
    seedance-batch run MANIFEST          render, download, report (--simulate: free, local)
    seedance-batch status MANIFEST       the ledger's view of a campaign
    seedance-batch report MANIFEST       rebuild the reports from the ledger
    seedance-batch review MANIFEST       approve, reject and pick takes in the browser
    seedance-batch prices | schema       the price table; the manifest JSON Schema
    seedance-batch simulate              a local APIDot simulator
    seedance-batch receive               take APIDot's callbacks into the ledger, as a service
    seedance-batch ledger copy SRC DST   move a ledger's history (SQLite <-> PostgreSQL)
    """


def console() -> Console:
    """The console tables are printed on: outside text never read as markup."""
    # Piped output (CI logs, `| less`) gets room for the tables instead of rich's 80 columns.
    # No markup or emoji codes in plain strings: what is printed may quote outside text, and
    # the tables' own styling does not need them.
    width = None if sys.stdout.isatty() else 120
    return Console(width=width, markup=False, emoji=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``seedance-batch`` console script: exit code of the command."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="seedance-batch",
                        standalone_mode=False)
    except SeedanceError as error:
        # A message may quote outside text (a server's words, a manifest value): each line inert.
        lines = [one_line(line) for line in error.lines()]
        for line in lines:
            click.echo(line if error.location or len(lines) > 1 else f"error: {line}", err=True)
        return exit_code(error)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as error:
        error.show()
        return EXIT_USAGE
    except click.exceptions.Exit as done:
        return done.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted: the ledger is saved; run the same command again to resume", err=True)
        return EXIT_INTERRUPTED
    return int(code or 0)
