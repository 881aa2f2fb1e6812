"""The campaign's videos, served to the review page: only those, only from the output folder.

A request names a file by its path under the campaign's output folder (``output.dir``),
as the report links it. It is served only when

1. the path is the file of one of the campaign's jobs (anything else, ``../`` included,
   is not a video of this campaign: 404, nothing on disk is even looked at);
2. once every symbolic link is resolved, the file is still inside the output folder
   (resolved too, so the folder itself may be a link): a link planted in ``renders/``
   pointing elsewhere is refused (403);
3. it opens as that same regular file without following a link (``O_NOFOLLOW``, and
   its device and inode are the resolved file's): a link swapped in between the check
   and the opening is refused too.

Answers support single byte ranges (``Range: bytes=a-b``), which browsers use to seek
in a video and to read its metadata first.
"""

from __future__ import annotations

import mimetypes
import os
import re
import stat
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

__all__ = ["MediaFile", "MediaRefused", "media_response", "open_media"]

_CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class MediaRefused(Exception):
    """A media request that is not served: its HTTP status and why, in one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class MediaFile:
    """An opened video: its descriptor (the response closes it), size and type."""

    fd: int
    size: int
    media_type: str


def open_media(root: Path, relative: str, allowed: Collection[str]) -> MediaFile:
    """Open ``relative`` under ``root`` for serving, or :class:`MediaRefused` (see the module's rules)."""
    if relative not in allowed:
        raise MediaRefused(404, "not a video of this campaign")
    try:
        real_root = root.resolve(strict=True)
        real = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a loop of links, unreadable
        raise MediaRefused(404, "the video is not on disk") from None
    if not real.is_relative_to(real_root):
        raise MediaRefused(403, "the video's path leads outside the campaign's output folder")
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise MediaRefused(403, "the video cannot be opened as a file of the output folder") from None
    try:
        opened, resolved = os.fstat(fd), os.stat(real, follow_symlinks=False)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (resolved.st_dev, resolved.st_ino):
            raise MediaRefused(403, "the video is not a regular file of the output folder")
    except BaseException:
        os.close(fd)
        raise
    media_type = mimetypes.guess_type(real.name)[0] or "application/octet-stream"
    return MediaFile(fd, opened.st_size, media_type)


def media_response(media: MediaFile, range_header: str | None) -> Response:
    """The file, whole (200) or the one byte range asked for (206); 416 for a range past its end.

    The response owns the descriptor from here on and closes it, whatever happens.
    """
    span = _span(range_header, media.size)
    if span is None:
        os.close(media.fd)
        return PlainTextResponse("the range is outside the file", 416,
                                 headers={"content-range": f"bytes */{media.size}"})
    start, end, partial = span
    headers = {"accept-ranges": "bytes", "content-length": str(end - start), "cache-control": "private, no-cache"}
    if partial:
        headers["content-range"] = f"bytes {start}-{end - 1}/{media.size}"
    return _FileSpan(media, start, end, status=206 if partial else 200, headers=headers)


def _span(header: str | None, size: int) -> tuple[int, int, bool] | None:
    """The bytes ``[start, end)`` to send and whether that is a range (206); None: unsatisfiable (416).

    No Range, several ranges or another unit: the whole file (RFC 9110 allows ignoring them).
    """
    found = _RANGE.match(header.strip()) if header else None
    if found is None or found.groups() == ("", ""):
        return 0, size, False
    first, last = found.groups()
    if not first:  # the last N bytes
        start, end = max(size - int(last), 0), size
    else:
        start, end = int(first), min(int(last) + 1, size) if last else size
    return (start, end, True) if start < end else None


class _FileSpan(Response):
    """Sends ``[start, end)`` of an open file, read in a worker thread; closes the file however it ends."""

    def __init__(self, media: MediaFile, start: int, end: int, *, status: int, headers: dict[str, str]) -> None:
        super().__init__(None, status_code=status, headers=headers, media_type=media.media_type)
        self._fd, self._start, self._end = media.fd, start, end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            position = self._start
            while position < self._end:
                chunk = await anyio.to_thread.run_sync(os.pread, self._fd, min(_CHUNK, self._end - position),
                                                       position)
                if not chunk:  # the file shrank meanwhile: end the answer short rather than hang
                    break
                position += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": position < self._end})
            if position < self._end or self._start == self._end:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            os.close(self._fd)
