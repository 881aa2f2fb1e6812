"""Serving the review: on 127.0.0.1 and a free port unless told otherwise, until Ctrl-C.

The server is :func:`seedance_batch.serving.serve_in_thread`, guarded as the webhook
receiver is (a cap on connections, deadlines for request heads, nothing printed per
request), with room for a video to stream for minutes to a paused player.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import UsageError
from ..ledger import Ledger
from ..ledger.decisions import check_reviewer
from ..serving import ConnectionLimits, serve_in_thread
from .app import ReviewCampaign, create_review_app
from .guard import Guard, new_token

__all__ = ["DEFAULT_LISTEN", "LIMITS", "RunningReview", "parse_listen", "review_until_signal", "reviewer_name",
           "serve_review"]

DEFAULT_LISTEN = "127.0.0.1:0"
# A browser opens a handful of connections per page (the page, its two files, a few videos
# at once); 64 is ample for several tabs. A video is read as the player needs it, so an answer
# may take as long as someone watches: ten minutes, then the player asks again from where it was.
LIMITS = ConnectionLimits(max_connections=64, head_seconds=10.0, request_seconds=600.0, keep_alive_seconds=5.0)


@dataclass(frozen=True, slots=True)
class RunningReview:
    """A review being served: where, and the link that opens it (it carries the session key)."""

    base_url: str
    token: str

    @property
    def url(self) -> str:
        """The link to open: the session key in it becomes the browser's cookie."""
        return f"{self.base_url}/?token={self.token}"


def parse_listen(listen: str | None) -> tuple[str, int]:
    """``--listen HOST:PORT`` (an IPv4 address, or localhost; port 0: any free port); a UsageError otherwise."""
    text = (listen or DEFAULT_LISTEN).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise UsageError(f"--listen must be HOST:PORT (an IPv4 address and a port up to 65535; 0: any free port), "
                         f"got {text[:60]!r}")
    host = "127.0.0.1" if host == "localhost" else host
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise UsageError(f"--listen: {host[:60]!r} is not an IPv4 address of this machine",
                         hint="e.g. --listen 127.0.0.1:8790, or 0.0.0.0:8790 to let other machines in") from None
    return host, int(port)


def reviewer_name(explicit: str | None) -> str:
    """Who decides: ``--reviewer NAME``, else the login name ($USER, $LOGNAME, the account's)."""
    name = explicit if explicit is not None else (os.environ.get("USER") or os.environ.get("LOGNAME") or _login())
    try:
        return check_reviewer(name)
    except ValueError as exc:
        raise UsageError(f"--reviewer: {exc}", hint="pass --reviewer NAME (your name, as others should see it)") from None


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no such user in the password database (a container)
        return ""


@contextmanager
def serve_review(campaign: ReviewCampaign, ledger: Ledger, *, host: str = "127.0.0.1",
                 port: int = 0) -> Iterator[RunningReview]:
    """Serve the review of ``campaign`` on ``host:port`` in a thread; yields where."""
    guard = Guard(new_token(), host)
    app = create_review_app(campaign, ledger, guard)
    with serve_in_thread(app, host=host, port=port, limits=LIMITS) as base_url:
        # Bound to every address: this machine's browser reaches it on loopback (0.0.0.0 is no address to open).
        yield RunningReview(base_url.replace("//0.0.0.0:", "//127.0.0.1:"), guard.token)


def review_until_signal(campaign: ReviewCampaign, ledger: Ledger, *, host: str, port: int,
                        announce: Callable[[RunningReview], None]) -> None:
    """Serve in the foreground until SIGINT or SIGTERM; ``announce`` gets the review once it answers."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with serve_review(campaign, ledger, host=host, port=port) as running:
            announce(running)
            while not stop.wait(1.0):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
