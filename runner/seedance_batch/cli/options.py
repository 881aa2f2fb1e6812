"""Options and argument types several commands share (one definition, one help text)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..verifiers import VERIFIERS  # small: the names and how to build each (built only when chosen)

__all__ = [
    "APPROVED_OPTION", "MANIFEST_ARGUMENT", "MAX_USD_OPTION", "ONLY_OPTION", "PRICES_OPTION", "PROFILE_OPTION",
    "REPORT_DIR_OPTION",
    "RESUBMIT_UNKNOWN_OPTION", "RETRY_FAILED_OPTION", "STATE_OPTION", "VERIFY_OPTION", "Usd",
]


if TYPE_CHECKING:  # generic from click 8.2 on; a plain class before (and at run time here)
    _AmountType = click.ParamType[Decimal]
else:
    _AmountType = click.ParamType


class Usd(_AmountType):
    """An amount of US dollars, as an exact Decimal, from 0 to :attr:`MAX`."""

    name = "usd"
    # No campaign costs a billion dollars: more is a typo. Unbounded, 9e999999999 is a
    # MemoryError and 1e100000000 minutes of printing it to the cent. The manifest's
    # budget.max_usd and run.confirm_above_usd have the same maximum (the schema's).
    MAX = Decimal(10**9)
    # Longer text is no amount anyone means ("1000000000.00" is 13); refused unparsed.
    MAX_CHARS = 40

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Decimal:
        from ..safetext import bound

        text = str(value).strip()
        try:
            amount = Decimal(text) if len(text) <= self.MAX_CHARS else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or not 0 <= amount <= self.MAX:
            self.fail(f"{bound(repr(text), self.MAX_CHARS)} is not an amount in USD from 0 to {self.MAX} "
                      "(e.g. 25 or 12.50)", param, ctx)
        return amount if amount else Decimal(0)  # -0 is 0


MANIFEST_ARGUMENT = click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
PRICES_OPTION = click.option(
    "--prices", type=click.Path(dir_okay=False), default=None,
    help="Your own model/price file (same format as schemas/models.json).",
)
STATE_OPTION = click.option(
    "--state", default=None, metavar="PATH|URL",
    help="Ledger file, or postgresql://USER@HOST/DB[?schema=NAME] shared by a team "
         "(default: $SEEDANCE_STATE, else .seedance/ledger.sqlite).",
)
MAX_USD_OPTION = click.option(
    "--max-usd", type=Usd(), default=None, help="Budget for this campaign in USD (overrides budget.max_usd).",
)
RETRY_FAILED_OPTION = click.option("--retry-failed", is_flag=True, help="Submit failed jobs again.")
RESUBMIT_UNKNOWN_OPTION = click.option(
    "--resubmit-unknown", is_flag=True,
    help="Submit again jobs whose submit got no answer (they may have been billed).",
)
ONLY_OPTION = click.option(
    "--only", "only", multiple=True, metavar="PATTERN",
    help="Only the jobs whose label matches this glob (repeatable): 'hero/*', '*/de-DE/*', street/ja-JP/9:16.",
)
PROFILE_OPTION = click.option(
    "--profile", default=None, metavar="NAME",
    help="The manifest's profile to use (e.g. draft or final; default: the manifest's profile:).",
)
APPROVED_OPTION = click.option(
    "--approved", is_flag=True,
    help="Only the takes approved in the review (where a combination has a picked take, only that one), "
         "in --profile's parameters with each take's seed.",
)
VERIFY_OPTION = click.option(
    "--verify", multiple=True, type=click.Choice(list(VERIFIERS)), metavar="NAME",
    help="Who may post callbacks, repeatable (default secret-path: the run's secret in the path); "
         "standard-webhooks also demands a signature with $APIDOT_WEBHOOK_SECRET.",
)
REPORT_DIR_OPTION = click.option(
    "--report-dir", default=None, metavar="DIR", help="Where to write the reports (default reports/<campaign>).",
)
