"""Who may post an event to the webhook receiver: a :class:`Verifier`, chosen by name from :data:`VERIFIERS`.

APIDot documents no signature, and shows every task's callback URL in its dashboard.
What a receiver can check today is that the caller knows the secret the run put in
the callback path (``secret-path``, :mod:`.secret_path`): that keeps out the
internet, not the account's own members. The day APIDot signs its callbacks, the
Standard Webhooks scheme (what Replicate and OpenAI send) is ready
(``standard-webhooks``, :mod:`.standard`).

A verifier judges one :class:`Delivery` and returns a :class:`Verdict`. The receiver
asks every verifier it was given; all must agree. A verifier that does not need the
body (``needs_body`` False) is asked before a byte of it is read, so a stranger's
request is refused as cheaply as it can be. A new kind is a new module here and a
line in :data:`VERIFIERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import UsageError
from .secret_path import (
    TOKEN_PREFIX,
    EitherTokens,
    LedgerTokens,
    StaticTokens,
    TokenBook,
    mint_token,
    token_digest,
    with_token,
)

__all__ = [
    "SIGNING_SECRET_ENV",
    "TOKEN_PREFIX",
    "VERIFIERS",
    "Delivery",
    "EitherTokens",
    "LedgerTokens",
    "StaticTokens",
    "TokenBook",
    "Verdict",
    "Verifier",
    "VerifierSetup",
    "make_verifiers",
    "mint_token",
    "token_digest",
    "with_token",
]

# Where a Standard Webhooks signing secret (``whsec_...``) is read from: the environment or
# .env, never a manifest (it is a secret: never logged, stored or shown).
SIGNING_SECRET_ENV = "APIDOT_WEBHOOK_SECRET"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a verifier sees of one request: its path, headers (lower-case names) and body."""

    path: str
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A verifier's answer. Refused: ``status`` is the HTTP answer and ``reason`` says why, in
    words safe to log (never the body, never a secret). ``campaign``: the campaign the event is
    for, when the verifier can tell (the secret-path token names it)."""

    ok: bool
    status: int = 200
    reason: str = ""
    campaign: str | None = None


class Verifier(Protocol):
    """One check of a delivery."""

    @property
    def needs_body(self) -> bool:
        """False: :meth:`verify` looks at the path and headers only (asked before the body is read)."""
        ...

    async def verify(self, delivery: Delivery) -> Verdict:
        """Accept or refuse ``delivery``."""
        ...


@dataclass(frozen=True, slots=True)
class VerifierSetup:
    """What a verifier may be built from: the tokens a secret path is checked against,
    a signing secret (None: none was given), the replay window in real seconds."""

    tokens: TokenBook
    signing_secret: str | None = None
    tolerance_seconds: float = 300.0
    clock: Callable[[], float] | None = None


def _secret_path(setup: VerifierSetup) -> Verifier:
    from .secret_path import SecretPath

    return SecretPath(setup.tokens)


def _standard(setup: VerifierSetup) -> Verifier:
    from .standard import StandardWebhooks

    if not setup.signing_secret:
        raise UsageError(f"--verify standard-webhooks needs the signing secret in {SIGNING_SECRET_ENV}",
                         hint=f"export {SIGNING_SECRET_ENV}=whsec_... (or put it in .env); APIDot does not sign yet")
    return StandardWebhooks(setup.signing_secret, tolerance_seconds=setup.tolerance_seconds, clock=setup.clock)


# verifier name -> how to build it (imported when chosen: each kind is its own module)
VERIFIERS: Mapping[str, Callable[[VerifierSetup], Verifier]] = {
    "secret-path": _secret_path,
    "standard-webhooks": _standard,
}


def make_verifiers(names: Sequence[str], setup: VerifierSetup) -> tuple[Verifier, ...]:
    """The verifiers named (each once, in order); an unknown name is a UsageError listing the known ones."""
    chosen: list[Verifier] = []
    for name in dict.fromkeys(names):
        if name not in VERIFIERS:
            raise UsageError(f"no webhook verifier {name!r}", hint=f"use one of: {', '.join(VERIFIERS)}")
        chosen.append(VERIFIERS[name](setup))
    return tuple(chosen)
