"""Downloading a finished video: streamed to a temp file, verified, renamed into place.

No half file ever sits under the final name: bytes go to a hidden temp file
(``.<name>.part``) in the target folder (same file system, so the final ``os.replace`` is atomic),
the size is checked against ``Content-Length``, the sha256 is computed on the
way, and only then is the file renamed. A target that would land outside the
output folder is refused. The API key is never sent to a file URL (file URLs
are signed, and may live on another host).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx

from .errors import TransientError, UsageError

__all__ = ["Downloaded", "UrlExpired", "download", "safe_target"]

CHUNK = 1 << 16


class UrlExpired(TransientError):
    """403/404/410 on a file URL: ask for the task's status again for a fresh one."""

    error_class = "url_expired"


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A file safely in place."""

    path: Path
    size: int
    sha256: str


def safe_target(output_dir: Path, relative: str) -> Path:
    """``output_dir / relative``, refusing anything that would resolve outside ``output_dir``."""
    root = output_dir.resolve()
    candidate = Path(relative)
    target = (root / candidate).resolve()
    if candidate.is_absolute() or not target.is_relative_to(root) or target == root:
        raise UsageError(f"output path {relative!r} would land outside the output folder {output_dir}",
                         hint="output.filename must render to a relative path below output.dir")
    return target


async def download(http: httpx.AsyncClient, url: str, target: Path) -> Downloaded:
    """Stream ``url`` into ``target`` atomically; raise :class:`UrlExpired` or TransientError."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # One fixed temp name per target: a run killed mid-download leaves it behind and the
    # next attempt truncates it (no directory scans, no litter).
    temp = target.with_name(f".{target.name}.part")
    try:
        with open(temp, "wb") as out:
            size, digest, expected = await _stream(http, url, out)
            out.flush()
            # durable before the rename, off the event loop (an fsync can take milliseconds)
            await anyio.to_thread.run_sync(os.fsync, out.fileno())
        if expected is not None and size != expected:
            raise TransientError(f"download: got {size} bytes, the server announced {expected}")
        if size == 0:
            raise TransientError("download: the file is empty")
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return Downloaded(target, size, digest)


async def _stream(http: httpx.AsyncClient, url: str, out: object) -> tuple[int, str, int | None]:
    sha = hashlib.sha256()
    size = 0
    try:
        async with http.stream("GET", url) as response:
            if response.status_code in (403, 404, 410):
                raise UrlExpired(f"download: HTTP {response.status_code} on the file URL", status=response.status_code)
            if response.status_code != 200:
                raise TransientError(f"download: HTTP {response.status_code}", status=response.status_code)
            length = response.headers.get("content-length")
            async for chunk in response.aiter_bytes(CHUNK):
                out.write(chunk)  # type: ignore[attr-defined]
                sha.update(chunk)
                size += len(chunk)
    except httpx.HTTPError as exc:
        raise TransientError(f"download: {type(exc).__name__}") from None
    expected = int(length) if length and length.isdigit() else None
    return size, sha.hexdigest(), expected
