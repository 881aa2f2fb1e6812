"""Standard Webhooks signatures, as the simulator's signing mode sends them.

APIDot documents no webhook signature. The simulator can sign anyway (``WebhookFaults.secret``),
the way Replicate, OpenAI and others do (https://www.standardwebhooks.com), so a receiver's
verifier is tested against the day APIDot signs::

    webhook-id:        msg_<hex>, the same for every delivery of one event (so a duplicate
                       can be recognised)
    webhook-timestamp: Unix seconds when it was sent
    webhook-signature: v1,<base64 of HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>

where ``key`` is the secret's base64 part (after ``whsec_``) decoded, and ``body`` the exact
bytes POSTed. A forged delivery (``bad_signature``) is signed with another key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["message_id", "sign", "signature_headers"]


def message_id(seed: int, task_id: str, status: str) -> str:
    """One event's id: fixed by what it says, so its duplicates carry the same one."""
    return "msg_" + hashlib.blake2b(f"{seed}|{task_id}|{status}".encode(), digest_size=12).hexdigest()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,`` + base64 of HMAC-SHA256 over ``{id}.{timestamp}.{body}``."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a signed delivery."""
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(key, msg_id, timestamp, body)}
