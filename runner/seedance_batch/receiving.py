"""Where callbacks are received: in the run itself, or by ``seedance-batch receive`` as a service of its own.

A run with ``run.callback_url`` (:func:`run_callbacks`) mints a secret for itself
(:func:`~.verifiers.mint_token`), submits its callback URL with that secret as the last
path segment, records the secret's digest in the ledger (never the secret) and revokes
it when the run ends. Where the callbacks land:

* ``--listen HOST:PORT`` (default 127.0.0.1:8787): the run serves the receiver itself,
  for as long as it lasts; the public ``callback_url`` reaches it through a tunnel or a
  reverse proxy. Under ``--simulate`` it listens on a free loopback port.
* ``--listen off``: the run serves nothing. A ``seedance-batch receive`` elsewhere (a
  machine the internet can reach, sharing the ledger: the same SQLite file, or one
  PostgreSQL database) receives them; it knows the run's secret by its digest.

Either way the receiver writes each event into the ledger before answering, and the run
picks the events up from there (:mod:`.run.events`).

:func:`serve_receiver` is the ``receive`` command: the receiver alone, long-lived,
accepting the callbacks of every run whose secret the ledger lists (``secret-path``),
optionally only signed ones (``standard-webhooks``), until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import LedgerError, UsageError
from .ledger import Ledger, ledger_location, open_ledger
from .verifiers import (
    SIGNING_SECRET_ENV,
    EitherTokens,
    LedgerTokens,
    StaticTokens,
    TokenBook,
    Verifier,
    VerifierSetup,
    make_verifiers,
    mint_token,
    token_digest,
    with_token,
)

if TYPE_CHECKING:
    from .run.settings import RunSettings
    from .webhooks import EventRelay, ReceiverStats

__all__ = ["DEFAULT_LISTEN", "LISTEN_OFF", "ReceiveOptions", "listen_address", "run_callbacks", "serve_receiver",
           "signing_secret"]

DEFAULT_LISTEN = "127.0.0.1:8787"
LISTEN_OFF = "off"
LISTEN_HINT = ("pass --listen HOST:PORT with an IPv4 address of this machine and a free port "
               "(default 127.0.0.1:8787)")


def listen_address(listen: str | None, *, allow_off: bool = True) -> tuple[str, int] | None:
    """``--listen`` as (host, port); None for ``off`` (no receiver here). A bad value is a UsageError."""
    text = listen or DEFAULT_LISTEN
    if allow_off and text.strip().lower() == LISTEN_OFF:
        return None
    host, _, port = text.rpartition(":")
    if not (port.isascii() and port.isdigit() and int(port) <= 65535) or not host:
        also = " or off" if allow_off else ""
        raise UsageError(f"--listen must be HOST:PORT (a port up to 65535){also}, got {listen!r}")
    return host, int(port)


def signing_secret(names: Sequence[str], cwd: Path | None = None) -> str | None:
    """The Standard Webhooks signing secret, when a verifier that needs it was chosen (environment, then .env)."""
    if "standard-webhooks" not in names:
        return None
    from .environment import read_dotenv

    return os.environ.get(SIGNING_SECRET_ENV) or read_dotenv((cwd or Path.cwd()) / ".env").get(SIGNING_SECRET_ENV)


def _verifiers(names: Sequence[str], tokens: TokenBook) -> tuple[Verifier, ...]:
    if "secret-path" not in names:
        raise UsageError("--verify must include secret-path: it is what keeps strangers' requests out",
                         hint="add --verify secret-path (a signature scheme comes on top of it)")
    return make_verifiers(names, VerifierSetup(tokens=tokens, signing_secret=signing_secret(names)))


@contextmanager
def run_callbacks(ledger: Ledger, settings: RunSettings, *, campaign: str, listen: str | None, simulate: bool,
                  verify: Sequence[str], relay: EventRelay) -> Iterator[RunSettings]:
    """The run's settings with its secret callback URL, while its receiver serves (when it has one).

    Without ``run.callback_url``: the settings as they are, nothing served.
    """
    if not settings.callback_url:
        yield settings
        return
    address = listen_address(listen)
    if simulate and address is not None:
        address = ("127.0.0.1", 0)  # the in-process simulator calls back on loopback
    token = mint_token()
    # Its own secret, then the other runners' of a shared ledger: an event reaching any runner's
    # receiver is stored, and the runner tracking that task reads it (run/events.py).
    verifiers = _verifiers(verify, EitherTokens(StaticTokens({token: campaign}), LedgerTokens(ledger)))
    digest = token_digest(token)
    ledger.add_callback_token(campaign, digest)  # how a `receive` elsewhere knows this run's callbacks
    try:
        with ExitStack() as stack:
            base = settings.callback_url
            if address is not None:
                url = stack.enter_context(_listening(ledger, address, relay, campaign, verifiers))
                if simulate:
                    base = f"{url}/apidot/callback"
            yield replace(settings, callback_url=with_token(base, token))
    finally:
        with suppress(LedgerError):  # the ledger failing is reported by the run; the digest is no secret
            ledger.revoke_callback_token(digest)


@contextmanager
def _listening(ledger: Ledger, address: tuple[str, int], relay: EventRelay | None, campaign: str | None,
               verifiers: Sequence[Verifier], stats: ReceiverStats | None = None) -> Iterator[str]:
    from .webhooks import run_receiver

    host, port = address
    try:
        with run_receiver(ledger, host=host, port=port, on_event=relay, campaign=campaign, verifiers=verifiers,
                          stats=stats) as url:
            yield url
    except UsageError as exc:  # its words name the simulator's --host/--port
        if not exc.message.startswith("cannot listen on"):
            raise
        why = exc.message.rsplit(": ", 1)[-1]
        raise UsageError(f"cannot listen on --listen {host}:{port}: {why}", hint=LISTEN_HINT) from None


@dataclass(frozen=True, slots=True)
class ReceiveOptions:
    """What ``receive`` was asked for."""

    state: str | None = None
    listen: str | None = None
    verify: Sequence[str] = ("secret-path",)


def serve_receiver(options: ReceiveOptions, *, announce: Callable[[str, str], None],
                   stop: threading.Event | None = None) -> ReceiverStats:
    """Serve the receiver until SIGINT/SIGTERM (or ``stop`` is set); what it did.

    ``announce(url, ledger)`` once it listens. The ledger is opened for writing (and
    migrated), never locked for a run: runs use it meanwhile. Refusals are logged to
    stderr, bounded (see :mod:`.webhooks`).
    """
    from .webhooks import ReceiverStats

    address = listen_address(options.listen, allow_off=False)
    assert address is not None
    stop = stop or threading.Event()
    stats = ReceiverStats()
    with open_ledger(ledger_location(options.state)) as ledger, _logging_to_stderr(), _stopped_by_signals(stop):
        verifiers = _verifiers(options.verify, LedgerTokens(ledger))
        with _listening(ledger, address, None, None, verifiers, stats) as url:
            announce(url, ledger.location)
            while not stop.wait(1.0):
                pass
    return stats


@contextmanager
def _logging_to_stderr() -> Iterator[None]:
    """The receiver's refusals (INFO on ``seedance_batch.webhooks``) as lines on stderr, while it serves."""
    logger = logging.getLogger("seedance_batch.webhooks")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextmanager
def _stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (signals reach the main thread only: elsewhere, nothing to install)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
