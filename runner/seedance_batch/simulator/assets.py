"""The files the simulator hands out, and their temporary signed URLs.

Every finished task's video is the same bundled MP4 (2 s, 320x180, H.264 + AAC,
``+faststart``, made with ffmpeg's testsrc and a sine tone), served by the
simulator itself; a task that lists a thumbnail first (see :mod:`.shapes`) has a
tiny PNG as well. Each URL carries an expiry time and an HMAC signature over the
task, the file name and the expiry, like the signed URLs of real services: after
the expiry it answers 403, and asking for the task's status again hands out a
fresh URL.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from functools import cache
from pathlib import Path
from urllib.parse import urlencode

__all__ = ["FILES", "SAMPLE_MP4", "file_url", "sample_mp4", "signature_ok", "thumbnail_png"]

SAMPLE_MP4 = Path(__file__).resolve().parent.parent / "assets" / "sample.mp4"


@cache
def sample_mp4() -> bytes:
    """The bytes of the bundled sample video (read once)."""
    return SAMPLE_MP4.read_bytes()


@cache
def thumbnail_png() -> bytes:
    """A 16x9 grey PNG: what a thumbnail is to a client that must not save it as the video."""
    width, height = 16, 9
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))  # filter byte, then grey pixels

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


# The files a finished task may have, by name in its URL: (media type, bytes).
FILES = {"video.mp4": ("video/mp4", sample_mp4), "thumb.png": ("image/png", thumbnail_png)}


def _sign(secret: bytes, task_id: str, expires: int, name: str = "video.mp4") -> str:
    message = f"{task_id}:{expires}" if name == "video.mp4" else f"{task_id}:{name}:{expires}"
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()[:32]


def file_url(base_url: str, secret: bytes, task_id: str, expires: int, name: str = "video.mp4") -> str:
    """``{base}/files/{task_id}/{name}?expires=...&signature=...``."""
    query = urlencode({"expires": expires, "signature": _sign(secret, task_id, expires, name)})
    return f"{base_url.rstrip('/')}/files/{task_id}/{name}?{query}"


def signature_ok(secret: bytes, task_id: str, expires: str | None, signature: str | None,
                 name: str = "video.mp4") -> bool:
    """Whether a file URL's query was signed by this simulator (expiry is checked apart)."""
    # isdigit() alone lets "²" through to int(), and compare_digest refuses non-ASCII text:
    # a hand-edited URL must get a 403, never a crash.
    if not expires or not signature or not (expires.isascii() and expires.isdigit()):
        return False
    return hmac.compare_digest(_sign(secret, task_id, int(expires), name).encode(), signature.encode())
