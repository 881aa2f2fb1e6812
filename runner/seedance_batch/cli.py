"""The command line: parse, call the pipeline stages, print, exit.

No logic lives here beyond wiring: the pipeline (:mod:`.pipeline`) does the work.
Every :class:`~seedance_batch.errors.SeedanceError` becomes one line per problem on
stderr and its exit code (:func:`~seedance_batch.errors.exit_code`), in :func:`main`;
anything else is a bug and keeps its traceback. The run's heavy imports (httpx,
anyio, the simulator's ASGI stack) are made only by the commands that need them, so
``validate`` and ``plan`` start fast. The application's logging is set here, at the edge.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from . import __version__, display
from .errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, SeedanceError, exit_code
from .models import load_catalog
from .pipeline import load_plan, view_campaign
from .plan import check_budget, write_plan_json
from .safetext import one_line

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
    seedance-batch prices | schema       the price table; the manifest JSON Schema
    seedance-batch simulate              a local APIDot simulator
    """


if TYPE_CHECKING:  # generic from click 8.2 on; a plain class before (and at run time here)
    _AmountType = click.ParamType[Decimal]
else:
    _AmountType = click.ParamType


class _Usd(_AmountType):
    """An amount of US dollars, as an exact Decimal, from 0 to :attr:`MAX`."""

    name = "usd"
    # No campaign costs a billion dollars: more is a typo. Unbounded, 9e999999999 is a
    # MemoryError and 1e100000000 minutes of printing it to the cent. The manifest's
    # budget.max_usd and run.confirm_above_usd have the same maximum (the schema's).
    MAX = Decimal(10**9)
    # Longer text is no amount anyone means ("1000000000.00" is 13); refused unparsed.
    MAX_CHARS = 40

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Decimal:
        from .safetext import bound

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
    "--state", default=None, metavar="PATH",
    help="Ledger file (default: $SEEDANCE_STATE, else .seedance/ledger.sqlite).",
)
MAX_USD_OPTION = click.option(
    "--max-usd", type=_Usd(), default=None, help="Budget for this campaign in USD (overrides budget.max_usd).",
)
RETRY_FAILED_OPTION = click.option("--retry-failed", is_flag=True, help="Submit failed jobs again.")
RESUBMIT_UNKNOWN_OPTION = click.option(
    "--resubmit-unknown", is_flag=True,
    help="Submit again jobs whose submit got no answer (they may have been billed).",
)
REPORT_DIR_OPTION = click.option(
    "--report-dir", default=None, metavar="DIR", help="Where to write the reports (default reports/<campaign>).",
)


# --- manifest, plan, prices, schema --------------------------------------------------------


@cli.command()
@MANIFEST_ARGUMENT
@PRICES_OPTION
def validate(manifest: Path, prices: str | None) -> int:
    """Check a manifest (schema, matrix, templates, model rules); spend nothing."""
    loaded, checked = load_plan(manifest, None, prices=prices)
    shots = len({planned.priced.job.shot for planned in checked.jobs})
    click.echo(f"{manifest}: ok: campaign {loaded.name!r}, {len(checked.jobs)} job(s) from {shots} shot(s)")
    return EXIT_OK


@cli.command()
@MANIFEST_ARGUMENT
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
@click.option("--report", "write_report", is_flag=True,
              help="Also write the plan's reports (reports/<campaign>/), over budget too.")
@MAX_USD_OPTION
@RETRY_FAILED_OPTION
@RESUBMIT_UNKNOWN_OPTION
@STATE_OPTION
@PRICES_OPTION
def plan(manifest: Path, as_json: bool, write_report: bool, state: str | None, **flags: Any) -> int:
    """Show what a run would render and what it would cost; spend nothing.

    Compares the manifest with the ledger: new, changed, in-flight, done, failed,
    unknown. Exit 3 when the run would spend past the budget.
    """
    view = view_campaign(manifest, state, **flags)
    if as_json:
        stdout = sys.stdout.buffer  # JSON bytes as written (click.get_binary_stream is deprecated)
        write_plan_json(view.plan, stdout)
        stdout.flush()
    else:
        console = _console()
        console.print(display.plan_table(view.plan))
        console.print(display.plan_summary(view.plan), markup=False, highlight=False)
    if write_report:  # before the budget check: an over-budget plan is worth a report too
        from .report import default_report_dir, report_line, write_reports

        paths = write_reports(view.plan, view.records, out_dir=default_report_dir(view.plan.campaign),
                              output_dir=Path(view.manifest.output_dir), manifest_path=view.manifest.path,
                              manifest_sha256=view.manifest.sha256)
        click.echo(report_line(paths), err=as_json)  # --json keeps stdout one JSON object
    check_budget(view.plan)
    return EXIT_OK


@cli.command()
def schema() -> int:
    """Print the manifest JSON Schema (for editors: yaml-language-server, VS Code)."""
    from ._data import data_path

    click.echo(data_path("manifest.schema.json").read_text(encoding="utf-8"), nl=False)
    return EXIT_OK


@cli.command()
@PRICES_OPTION
def prices(prices: str | None) -> int:
    """Print the price table in force, with its snapshot date."""
    _console().print(display.prices_table(load_catalog(prices)))
    return EXIT_OK


# --- simulate --------------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8750, show_default=True, help="0: any free port.")
# The range simulator.config enforces (MIN_TIME_SCALE, MAX_TIME_SCALE; a test keeps them
# equal): written out because importing the simulator here would slow every command.
@click.option("--time-scale", type=click.FloatRange(1e-6, 1000.0), default=1.0, show_default=True,
              help="Real seconds per service second: scales render times, rate-limit windows, URL "
                   "lifetime and webhook delays (0.01: a 60 s render takes 0.6 s).")
@click.option("--key-prefix", default="sk-sim", show_default=True, help="Accept any API key starting with this.")
@click.option("--credits", type=click.IntRange(min=0), default=None, help="Starting balance; past it: 402.")
@click.option("--submits-per-minute", type=click.IntRange(min=1), default=None, help="Past it: 429 + Retry-After.")
@click.option("--status-per-minute", type=click.IntRange(min=1), default=None, help="Past it: 429 + Retry-After.")
@click.option("--url-ttl", type=float, default=24 * 3600.0, show_default=True,
              help="Service seconds a file URL stays valid.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every fault and task fate.")
@click.option("--fault", "fault_pairs", multiple=True, metavar="NAME=VALUE",
              help="A fault rate or time, repeatable: server_error, drop, malformed, error_code, slow, "
                   "ambiguous_submit, task_fail, task_stuck (0..1); slow_seconds, hang_seconds.")
@click.option("--webhook", "webhook_pairs", multiple=True, metavar="NAME=VALUE",
              help="Callback misbehaviour, repeatable: duplicate, delay, out_of_order (0..1); "
                   "delay_seconds; shape=nested|flat.")
@PRICES_OPTION
def simulate(host: str, port: int, seed: int, fault_pairs: tuple[str, ...], webhook_pairs: tuple[str, ...],
             prices: str | None, **knobs: Any) -> int:
    """Run the local APIDot simulator in the foreground (Ctrl-C stops it). Free: nothing is billed."""
    from .simulator import Faults, SimulatorConfig, WebhookFaults, serve_until_signal
    from .simulator.config import parse_knobs

    config = SimulatorConfig(
        faults=Faults(seed=seed, **parse_knobs(fault_pairs, Faults, flag="--fault")),  # type: ignore[arg-type]
        webhooks=WebhookFaults(**parse_knobs(webhook_pairs, WebhookFaults, flag="--webhook")),  # type: ignore[arg-type]
        prices=prices, **knobs,
    )
    serve_until_signal(config, host=host, port=port, announce=_announce_simulator)
    click.echo("simulator stopped")
    return EXIT_OK


def _announce_simulator(url: str) -> None:
    click.echo(f"APIDot simulator listening on {url}  (stats: {url}/_sim/stats; Ctrl-C to stop)")
    click.echo("Point the runner at it:")
    click.echo(f"  APIDOT_BASE_URL={url} APIDOT_API_KEY=sk-sim-demo seedance-batch run MANIFEST")
    sys.stdout.flush()


# --- run, status, report ---------------------------------------------------------------------


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
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Where the webhook receiver listens when run.callback_url is set (default 127.0.0.1:8787).")
@STATE_OPTION
@PRICES_OPTION
def run(manifest: Path, simulate: bool, yes: bool, retry_failed: bool, resubmit_unknown: bool,
        max_usd: Decimal | None, state: str | None, prices: str | None, report_dir: str | None,
        time_scale: float | None, listen: str | None, **overrides: Any) -> int:
    """Render a campaign: submit, track, download, report. Resumable: run it again."""
    from . import pipeline
    from .run.progress import choose_progress

    _quiet_retries()
    options = pipeline.RunOptions(
        manifest=manifest, state=state, prices=prices, simulate=simulate, yes=yes, retry_failed=retry_failed,
        resubmit_unknown=resubmit_unknown, max_usd=max_usd, report_dir=report_dir, time_scale=time_scale,
        listen=listen, overrides=overrides,
    )
    outcome = pipeline.run_manifest(options, confirm=_confirm_spend, progress=choose_progress())
    for rec in outcome.recovered:
        click.echo(f"{one_line(rec.label)}: a crashed run left its submit unanswered; now unknown "
                   "(see --resubmit-unknown)", err=True)
    result = outcome.result
    counts = ", ".join(f"{n} {state}" for state, n in sorted(result.counts().items())) or "nothing to do"
    click.echo(f"{one_line(outcome.plan.campaign)}: {counts}; submitted {result.submitted} this run; "
               f"spent ${Decimal(result.stats['spent_usd']):.2f} in total")
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


@cli.command()
@MANIFEST_ARGUMENT
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@STATE_OPTION
@PRICES_OPTION
def status(manifest: Path, as_json: bool, state: str | None, prices: str | None) -> int:
    """Show the ledger's view of a campaign: each job's state, task id, cost and file.

    Only reads (a ledger on a read-only file system too): a job left "submitting"
    is shown as it stands, since a run may be submitting it right now; the next run
    turns a crashed one into "unknown".
    """
    view = view_campaign(manifest, state, prices=prices)
    rows = display.status_rows(view.plan, Path(view.manifest.output_dir))
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["state"]] = totals.get(row["state"], 0) + 1
    if as_json:
        click.echo(display.inert_json({  # C1 and bidi escaped too, as JSON escapes
            "campaign": view.plan.campaign, "ledger": view.ledger_path, "jobs": rows, "totals": totals,
            "spent_usd": str(view.plan.spent_usd),
        }))
        return EXIT_OK
    _console().print(display.status_table(view.plan.campaign, view.ledger_path, rows))
    click.echo(", ".join(f"{n} {s}" for s, n in totals.items()) + f"; spent ${view.plan.spent_usd:.2f}")
    return EXIT_OK


@cli.command()
@MANIFEST_ARGUMENT
@REPORT_DIR_OPTION
@STATE_OPTION
@PRICES_OPTION
def report(manifest: Path, report_dir: str | None, state: str | None, prices: str | None) -> int:
    """Rebuild the reports from the ledger: any time, also mid-run or after a crash.

    Writes report.html, report.csv, report.json, junit.xml and summary.md. Only reads
    the ledger (a crashed submit is reported as it stands; the next run recovers it).
    """
    from .report import default_report_dir, report_line, write_reports

    view = view_campaign(manifest, state, prices=prices)
    out_dir = Path(report_dir) if report_dir else default_report_dir(view.plan.campaign)
    paths = write_reports(view.plan, view.records, out_dir=out_dir, output_dir=Path(view.manifest.output_dir),
                          manifest_path=view.manifest.path, manifest_sha256=view.manifest.sha256)
    click.echo(report_line(paths))
    return EXIT_OK


def _console() -> Console:
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
