"""The video the simulator hands out, and its temporary signed URLs.

Every finished task's file is the same bundled MP4 (2 s, 320x180, H.264 + AAC,
``+faststart``, made with ffmpeg's testsrc and a sine tone), served by the
simulator itself. Its URL carries an expiry time and an HMAC signature, like
the signed URLs of real services: after the expiry it answers 403, and asking
for the task's status again hands out a fresh URL.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import cache
from pathlib import Path
from urllib.parse import urlencode

__all__ = ["SAMPLE_MP4", "file_url", "sample_mp4", "signature_ok"]

SAMPLE_MP4 = Path(__file__).resolve().parent.parent / "assets" / "sample.mp4"


@cache
def sample_mp4() -> bytes:
    """The bytes of the bundled sample video (read once)."""
    return SAMPLE_MP4.read_bytes()


def _sign(secret: bytes, task_id: str, expires: int) -> str:
    return hmac.new(secret, f"{task_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def file_url(base_url: str, secret: bytes, task_id: str, expires: int) -> str:
    """``{base}/files/{task_id}/video.mp4?expires=...&signature=...``."""
    query = urlencode({"expires": expires, "signature": _sign(secret, task_id, expires)})
    return f"{base_url.rstrip('/')}/files/{task_id}/video.mp4?{query}"


def signature_ok(secret: bytes, task_id: str, expires: str | None, signature: str | None) -> bool:
    """Whether a file URL's query was signed by this simulator (expiry is checked apart)."""
    # isdigit() alone lets "²" through to int(), and compare_digest refuses non-ASCII text:
    # a hand-edited URL must get a 403, never a crash.
    if not expires or not signature or not (expires.isascii() and expires.isdigit()):
        return False
    return hmac.compare_digest(_sign(secret, task_id, int(expires)).encode(), signature.encode())
