"""The command line: parse, call the pipeline stages, print, exit.

No logic lives here beyond wiring. Every :class:`~seedance_batch.errors.SeedanceError`
becomes one line per problem on stderr and its documented exit code, in
:func:`main`; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
from rich.console import Console

from . import __version__, display
from .errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, SeedanceError
from .models import load_catalog

__all__ = ["cli", "main"]


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
    """


# --- commands: manifest, plan, prices, schema ---------------------------------------------

PRICES_OPTION = click.option(
    "--prices", "prices", type=click.Path(dir_okay=False), default=None,
    help="Your own model/price file (same format as schemas/models.json).",
)


@cli.command()
@PRICES_OPTION
def prices(prices: str | None) -> int:
    """Print the price table in force, with its snapshot date."""
    Console().print(display.prices_table(load_catalog(prices)))
    return EXIT_OK


# --- commands: simulate --------------------------------------------------------------------

# --- commands: run, status -----------------------------------------------------------------

# --- commands: report ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``seedance-batch`` console script."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="seedance-batch", standalone_mode=False)
    except SeedanceError as error:
        for line in error.lines():
            click.echo(line if error.location or len(error.lines()) > 1 else f"error: {line}", err=True)
        return error.exit_code
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
