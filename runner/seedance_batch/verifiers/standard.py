"""The verifier ``standard-webhooks``: signatures as https://www.standardwebhooks.com specifies them.

What Replicate and OpenAI send, ready for the day APIDot signs its callbacks (it does
not yet: the contract documents no signature). Three headers:

    webhook-id         the message's id
    webhook-timestamp  when it was sent, whole seconds since the epoch
    webhook-signature  space-separated ``v1,<base64 HMAC-SHA256>`` entries (a signer
                       rotating its secret sends more than one; other versions are ignored)

The signature is HMAC-SHA256, keyed with the base64 part of the ``whsec_...`` secret, over
``{webhook-id}.{webhook-timestamp}.{body}``; each entry is compared in constant time. A
timestamp further than ``tolerance_seconds`` (5 minutes, the spec's) from now, either
way, is refused: a captured delivery cannot be replayed later. A replay inside the window
changes nothing either: events are hints (see :mod:`seedance_batch.webhooks`).

Refusals are 401 with a reason that never quotes the headers or the body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from . import Delivery, Verdict

__all__ = ["SECRET_PREFIX", "StandardWebhooks", "sign"]

SECRET_PREFIX = "whsec_"
# Headers longer than these are nobody's signature (an id is ~30 characters, a timestamp 10,
# a signature entry 47; a few entries for a rotation).
MAX_ID = 256
MAX_SIGNATURES = 8


def _key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; UsageError (never quoting it) when it is not one."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise UsageError("the webhook signing secret is not whsec_ followed by base64",
                         hint="copy it exactly as the provider shows it")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for a delivery (one ``v1,`` entry): what a signer sends."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


class StandardWebhooks:
    """Refuse (401) a delivery without a valid, recent Standard Webhooks signature."""

    needs_body = True

    def __init__(self, secret: str, *, tolerance_seconds: float = 300.0,
                 clock: Callable[[], float] | None = None) -> None:
        self._key = _key(secret)
        self._tolerance = tolerance_seconds
        self._clock = clock or time.time

    async def verify(self, delivery: Delivery) -> Verdict:
        from . import Verdict

        problem = self._problem(delivery)
        return Verdict(True) if problem is None else Verdict(False, 401, problem)

    def _problem(self, delivery: Delivery) -> str | None:
        headers = delivery.headers
        msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature", "")
        if not (msg_id and stamp and signatures):
            return "no Standard Webhooks signature (webhook-id, webhook-timestamp, webhook-signature)"
        if len(msg_id) > MAX_ID or not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
            return "a malformed webhook-id or webhook-timestamp"
        if abs(self._clock() - int(stamp)) > self._tolerance:
            return f"webhook-timestamp is more than {self._tolerance:g} s away from now (a replay, or a clock off)"
        expected = hmac.new(self._key, f"{msg_id}.{stamp}.".encode() + delivery.body, hashlib.sha256).digest()
        matched = False
        for entry in signatures.split(" ")[:MAX_SIGNATURES]:
            version, _, encoded = entry.partition(",")
            if version != "v1":
                continue
            try:
                given = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                continue
            matched |= hmac.compare_digest(expected, given)  # every entry compared, whatever matches
        return None if matched else "the webhook signature does not match"
