"""The verifier ``secret-path``: the callback URL's last path segment is a secret the run minted.

Each run that asks for callbacks mints a token (:func:`mint_token`: 256 random bits)
and submits ``callback_url`` with it as the last path segment (:func:`with_token`). A
request whose path holds no token this receiver knows gets 404, before its
body is read, as if nothing were there. Tokens are compared as SHA-256 digests with
:func:`hmac.compare_digest`, against every known one (no early exit), so neither the
comparison nor a lookup order tells a caller how close a guess came.

The receiver learns the tokens from a :class:`TokenBook`: the run's own receiver
knows its one token (:class:`StaticTokens`), then those of the other runners sharing its
ledger (:class:`EitherTokens`); ``seedance-batch receive``, serving runs elsewhere, reads
the digests the runs recorded in the ledger (:class:`LedgerTokens`).
Only digests are ever stored, never a token.

What it protects against: the internet (a stranger who finds the receiver cannot post
to it). What it does not: APIDot shows each task's callback URL, token included, in
its dashboard, so every member of the account can read it.

Tokens start ``sk-hook-``: the shape :func:`~seedance_batch.safetext.scrub` masks in any
text the service sends back, so an echoed callback URL cannot carry the token into the
ledger, a log or a report even where the exact token is not known.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from ..ledger import AsyncLedger, Ledger
    from . import Delivery, Verdict

__all__ = ["TOKEN_PREFIX", "EitherTokens", "LedgerTokens", "SecretPath", "StaticTokens", "TokenBook", "mint_token",
           "token_digest", "with_token"]

TOKEN_PREFIX = "sk-hook-"
# 32 random bytes, URL-safe base64: 43 characters, nothing to guess.
TOKEN_BYTES = 32
# A token is this long exactly; a path segment of another length is refused without hashing.
TOKEN_LENGTH = len(TOKEN_PREFIX) + 43
# How stale the ledger's digests may be: a new run's token is looked up again after a miss
# (at most once a second, so a flood of guesses costs no more than one read a second), and
# a revoked one stops working within REFRESH_SECONDS.
MISS_REFRESH_SECONDS = 1.0
REFRESH_SECONDS = 10.0


def mint_token() -> str:
    """A new callback token (a secret: put it only in the callback URL submitted)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """What the ledger keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def with_token(url: str, token: str) -> str:
    """``url`` with ``token`` as its last path segment (its query string, if any, kept after it)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{token}"))


def _candidates(path: str) -> list[str]:
    """The path's segments shaped like a token (the run puts it last; a proxy may add a segment
    after it): at most a few, so a long path costs no more than a short one."""
    return [part for part in path.split("/") if len(part) == TOKEN_LENGTH and part.startswith(TOKEN_PREFIX)][:4]


class TokenBook(Protocol):
    """Where the receiver looks tokens up."""

    async def campaign(self, token: str) -> str | None:
        """The campaign whose runs carry ``token``; None when it is not a live token."""
        ...


def _match(token: str, digests: Mapping[str, str]) -> str | None:
    """The campaign of ``token`` among ``digests`` (digest -> campaign), compared in constant time."""
    wanted = token_digest(token).encode("ascii")
    found: str | None = None
    for digest, campaign in digests.items():
        if hmac.compare_digest(wanted, digest.encode("ascii", "replace")):
            found = campaign  # no break: every digest is compared, whatever matches
    return found


class StaticTokens:
    """The tokens a receiver was given (a run's own receiver: its one token)."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        # token -> campaign; only the digests are kept
        self._digests = {token_digest(token): campaign for token, campaign in tokens.items()}

    async def campaign(self, token: str) -> str | None:
        return _match(token, self._digests)


class EitherTokens:
    """Several books asked in turn (a run's receiver: its own token, then the ledger's for the
    other runners sharing it, so a callback reaching any runner's receiver is stored)."""

    def __init__(self, *books: TokenBook) -> None:
        self._books = books

    async def campaign(self, token: str) -> str | None:
        for book in self._books:
            found = await book.campaign(token)
            if found is not None:
                return found
        return None


class LedgerTokens:
    """The digests the runs recorded in a ledger (``Ledger.add_callback_token``), re-read as they change."""

    def __init__(self, ledger: Ledger, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._sync = ledger
        self._ledger: AsyncLedger | None = None
        self._digests: dict[str, str] = {}
        self._read_at: float | None = None
        self._clock = clock

    async def campaign(self, token: str) -> str | None:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= REFRESH_SECONDS:
            await self._read(now)
        found = _match(token, self._digests)
        if found is None and self._read_at is not None and now - self._read_at >= MISS_REFRESH_SECONDS:
            await self._read(now)  # a run started since the last read
            found = _match(token, self._digests)
        return found

    async def _read(self, now: float) -> None:
        if self._ledger is None:
            from ..ledger import AsyncLedger

            self._ledger = AsyncLedger(self._sync)  # made on the loop that serves: the one it is used on
        self._digests = await self._ledger.callback_tokens()
        self._read_at = now


class SecretPath:
    """Refuse (404) a request whose path does not end in a live token; the token names the campaign."""

    needs_body = False

    def __init__(self, tokens: TokenBook) -> None:
        self._tokens = tokens

    async def verify(self, delivery: Delivery) -> Verdict:
        from . import Verdict

        candidates = _candidates(delivery.path)
        if not candidates:
            return Verdict(False, 404, "no callback secret in the path")
        for token in candidates:
            campaign = await self._tokens.campaign(token)
            if campaign is not None:
                return Verdict(True, campaign=campaign)
        return Verdict(False, 404, "not a live callback secret")
