"""simulate: the local APIDot simulator, in the foreground."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import EXIT_OK
from .group import cli
from .options import PRICES_OPTION

__all__ = ["simulate"]


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
@click.option("--submits-per-minute", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Submit limit per API key, as a rate (counted per --rate-window); past it: 429.")
@click.option("--status-per-minute", type=click.FloatRange(min=0, min_open=True), default=None,
              help="The same for status calls, in their own window.")
@click.option("--rate-window", type=float, default=10.0, show_default=True,
              help="Service seconds of one rate window (the contract: 10 s).")
@click.option("--rate-limit-mode", type=click.Choice(["fixed", "lockout", "sliding"]), default="fixed",
              show_default=True, help="fixed: 429 until the clock's window ends; lockout: a full window of 429s "
                                      "once the limit trips; sliding: at most N in any window.")
@click.option("--retry-after/--no-retry-after", default=False, show_default=True,
              help="Send Retry-After with a 429 (the contract does not promise it).")
@click.option("--url-ttl", type=float, default=3 * 86400.0, show_default=True,
              help="Service seconds a file URL stays valid (APIDot keeps media 3 days).")
@click.option("--queue-median", type=float, default=None, metavar="SECONDS",
              help="A heavy-tailed not_started wait: its median (with --queue-p95; e.g. 10).")
@click.option("--queue-p95", type=float, default=None, metavar="SECONDS",
              help="...and its 95th percentile (e.g. 180).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every fault, task fate and answer shape.")
@click.option("--fault", "fault_pairs", multiple=True, metavar="NAME=VALUE",
              help="A fault rate or time, repeatable: server_error, drop, malformed, error_code, slow, "
                   "ambiguous_submit, task_fail, task_stuck (0..1; task_stuck is 0.005 unless set); "
                   "slow_seconds, hang_seconds.")
@click.option("--webhook", "webhook_pairs", multiple=True, metavar="NAME=VALUE",
              help="Callback misbehaviour, repeatable: duplicate, delay, out_of_order, drop, bad_signature (0..1); "
                   "delay_seconds, timestamp_offset; shape=nested|flat.")
@click.option("--webhook-secret", envvar="SIMULATOR_WEBHOOK_SECRET", default=None, metavar="whsec_...",
              help="Sign every callback (Standard Webhooks) with this secret; read from "
                   "$SIMULATOR_WEBHOOK_SECRET (never put a secret on a command line).")
@click.option("--answer", "answer_pairs", multiple=True, metavar="NAME=VALUE",
              help="How often answers take each shape, repeatable: files_at_data, thumbnail, completed, "
                   "processing, refund, refund_shown (0..1); progress=yes|no.")
@PRICES_OPTION
def simulate(host: str, port: int, seed: int, fault_pairs: tuple[str, ...], webhook_pairs: tuple[str, ...],
             answer_pairs: tuple[str, ...], webhook_secret: str | None, queue_median: float | None,
             queue_p95: float | None, prices: str | None, **knobs: Any) -> int:
    """Run the local APIDot simulator in the foreground (Ctrl-C stops it). Free: nothing is billed."""
    from ..simulator import Answers, Faults, Latency, SimulatorConfig, WebhookFaults, serve_until_signal
    from ..simulator.knobs import parse_knobs

    hooks = parse_knobs(webhook_pairs, WebhookFaults, flag="--webhook")
    config = SimulatorConfig(
        faults=Faults(seed=seed, **parse_knobs(fault_pairs, Faults, flag="--fault")),  # type: ignore[arg-type]
        webhooks=WebhookFaults(secret=webhook_secret, **hooks),  # type: ignore[arg-type]
        answers=Answers(**parse_knobs(answer_pairs, Answers, flag="--answer")),  # type: ignore[arg-type]
        latency=Latency(queue_median=queue_median, queue_p95=queue_p95),
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
