"""The checks every simulator knob passes: each bad value one :class:`UsageError` naming the knob.

Shared by the knob records of :mod:`.config`; a secret is never quoted in a message.
"""

from __future__ import annotations

import base64
import binascii

from ..errors import UsageError

__all__ = ["MAX_SECONDS", "SECRET_PREFIX", "check_rate", "check_seconds", "check_secret", "check_total"]

# Any duration knob, in seconds: a month outlasts everything the service keeps (media
# 3 days), and keeps every deadline a finite float whatever the time scale.
MAX_SECONDS = 30 * 86400.0
# Standard Webhooks secrets: "whsec_" + base64 of the key bytes.
SECRET_PREFIX = "whsec_"
# The Standard Webhooks spec asks for keys of 24 to 64 bytes; fewer than 16 is no secret.
MIN_SECRET_BYTES = 16


def check_rate(name: str, value: float) -> None:
    """A probability, 0 to 1 (NaN fails every comparison, so it is refused too)."""
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"{name} must be a probability from 0 to 1, got {value!r}")


def check_seconds(name: str, value: float) -> None:
    """A duration from 0 to :data:`MAX_SECONDS` (infinity and NaN refused)."""
    if not value >= 0:  # also refuses NaN, which every comparison fails
        raise UsageError(f"{name} must be 0 or more seconds, got {value!r}")
    if value > MAX_SECONDS:  # infinity too
        raise UsageError(f"{name} must be at most {MAX_SECONDS:.0f} seconds, got {value!r}")


def check_total(what: str, total: float) -> None:
    """Rates split from one draw must add up to at most 1."""
    if total > 1.0 + 1e-9:
        raise UsageError(f"{what} add up to {total:g}; they must add up to at most 1")


def check_secret(secret: object) -> bytes:
    """A Standard Webhooks secret (``whsec_`` + base64 of at least 16 bytes); its key bytes."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise UsageError("the webhook secret must start with whsec_ (a Standard Webhooks secret)")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise UsageError("the webhook secret: the part after whsec_ is not base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise UsageError(f"the webhook secret's key is {len(key)} bytes; use at least {MIN_SECRET_BYTES}")
    return key
