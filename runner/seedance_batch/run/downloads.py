"""Downloading a finished video: streamed to a temp file, verified, renamed into place.

No half file ever sits under the final name: bytes go to a hidden temp file
(``.<name>.part``) in the target folder (same file system, so the final ``os.replace`` is atomic),
the size is checked against ``Content-Length``, the sha256 is computed on the
way, and only then is the file renamed. The API key is never sent to a file URL
(file URLs are signed, and may live on another host).

What arrives is not trusted (the service, or whoever answers for it, may be hostile):

* the body is bounded *while it streams* (``max_bytes``, from the model's data: see
  :func:`seedance_batch.models.max_video_bytes`); an endless body stops there;
* a ``Content-Encoding`` (gzip, deflate) is undone here, with the bound applied to
  what it inflates to, so a gzip bomb costs ``max_bytes`` at most (``Content-Length``
  counts the encoded bytes, and is checked against those);
* what arrived must look like an MP4 (an ``ftyp`` box at bytes 4..8), else it is a
  :class:`BadVideo`: an HTML error page is never saved as the ``.mp4``;
* the target must stay below the output folder: it is checked before (:func:`safe_target`),
  the folder is opened without following a symbolic link and checked again, and the
  temp file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` in it, so a link planted
  at ``.<name>.part`` (or a folder swapped for one) is never written through.

The deadline of a whole download belongs to the engine (``run.timeout``).
"""

from __future__ import annotations

import errno
import hashlib
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio
import httpx

from ..errors import TransientError, UsageError

__all__ = [
    "BadVideo",
    "BodyError",
    "BodyTooLarge",
    "Downloaded",
    "Inflater",
    "UrlExpired",
    "download",
    "read_bounded",
    "safe_target",
]

CHUNK = 1 << 16
# The most decoded bytes produced from one network chunk at a time: deflate inflates up
# to ~1000x, so a 64 KiB chunk of a gzip bomb could otherwise be 64 MiB in memory at once.
PIECE = 1 << 20
# An MP4 file starts with its ``ftyp`` box: 4 bytes of size, then the type.
MP4_MAGIC = b"ftyp"
MAGIC_END = 8
# Encodings undone here; anything else cannot be checked, so it is refused (we ask for identity).
_GZIP = ("gzip", "x-gzip")
_DEFLATE = ("deflate",)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class UrlExpired(TransientError):
    """403/404/410 on a file URL: ask for the task's status again for a fresh one."""

    error_class = "url_expired"


class BadVideo(TransientError):
    """What arrived cannot be the video: too large, not an MP4, an encoding that cannot be undone.

    Not retried in the same run (the same URL would send the same thing); the job stays
    ``finished`` and a later run downloads it again, without paying again.
    """

    error_class = "bad_video"


class BodyError(ValueError):
    """A body past its bound, or whose Content-Encoding cannot be undone."""


class BodyTooLarge(BodyError):
    """A body past its bound."""


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A file safely in place."""

    path: Path
    size: int
    sha256: str


class Inflater:
    """Undoes a ``Content-Encoding`` chunk by chunk, never producing more than ``limit`` bytes.

    Raises :class:`BodyError` past ``limit``, on an unknown encoding, on a corrupt or
    truncated compressed stream.
    """

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in _GZIP + _DEFLATE):
            raise BodyError(f"a Content-Encoding that cannot be undone here ({', '.join(codings)[:60]!r})")
        self._coding = codings[0] if codings else None
        self._limit = limit
        self._made = 0
        self._z = self._new()
        self._first = True

    def _new(self) -> zlib._Decompress | None:
        if self._coding in _GZIP:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj() if self._coding else None

    def feed(self, raw: bytes) -> Iterator[bytes]:
        """The decoded bytes ``raw`` stands for, in pieces of at most :data:`PIECE`."""
        if self._z is None:
            yield from self._count(raw)
            return
        try:
            yield from self._inflate(raw)
        except zlib.error:
            if not (self._first and self._made == 0 and self._coding in _DEFLATE):
                raise BodyError("a compressed body that cannot be decompressed") from None
            # "deflate" is sent both zlib-wrapped (as specified) and raw (as IIS did): try raw.
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            self._first = False
            yield from self.feed(raw)
        self._first = False

    def _inflate(self, raw: bytes) -> Iterator[bytes]:
        assert self._z is not None
        data = raw
        while True:
            if self._z.eof:  # a gzip member ended; gzip allows another one to follow it
                data = self._z.unused_data + data
                if not data or self._coding not in _GZIP:
                    return  # what follows a finished deflate stream is ignored, as httpx does
                self._z = self._new()
                assert self._z is not None
            room = min(self._limit - self._made + 1, PIECE)
            out = self._z.decompress(data, room)
            yield from self._count(out)
            data = self._z.unconsumed_tail
            if not data and len(out) < room and not self._z.eof:
                return  # all input taken and no output pending

    def _count(self, piece: bytes) -> Iterator[bytes]:
        self._made += len(piece)
        if self._made > self._limit:
            raise BodyTooLarge(f"more than {self._limit} bytes once decoded")
        if piece:
            yield piece

    def end(self) -> None:
        """The body is over: refuse a compressed stream cut short."""
        if self._z is not None and not self._z.eof:
            raise BodyError("a compressed body that ended early")


async def read_bounded(response: httpx.Response, limit: int) -> bytes:
    """The decoded body of a streamed ``response``, at most ``limit`` bytes (raw and decoded).

    Raises :class:`BodyError` past the limit or on an encoding that cannot be undone.
    """
    try:
        whole = response.content  # a transport that built the answer whole (httpx.MockTransport)
    except httpx.ResponseNotRead:
        pass
    else:
        if len(whole) > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
        return whole
    inflater = Inflater(response.headers.get("content-encoding"), limit)
    parts: list[bytes] = []
    raw = 0
    async for chunk in response.aiter_raw(CHUNK):
        raw += len(chunk)
        if raw > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
        parts.extend(inflater.feed(chunk))
    inflater.end()
    return b"".join(parts)


def safe_target(output_dir: Path, relative: str) -> Path:
    """``output_dir / relative``, refusing anything that would resolve outside ``output_dir``.

    Symbolic links are followed to see where the file would really land: a link at the
    final name, or at a folder on the way, that leads out of ``output_dir`` is refused.
    """
    root = output_dir.resolve()
    candidate = Path(relative)
    target = (root / candidate).resolve()
    if candidate.is_absolute() or not target.is_relative_to(root) or target == root:
        inside = not candidate.is_absolute() and ".." not in candidate.parts and candidate.parts
        why = f" (a symbolic link leads it to {target})" if inside else ""
        raise UsageError(f"output path {relative!r} would land outside the output folder {output_dir}{why}",
                         hint="output.filename must render to a relative path below output.dir, "
                              "with no symbolic link leading out of it")
    return target


async def download(http: httpx.AsyncClient, url: str, target: Path, *, max_bytes: int, root: Path) -> Downloaded:
    """Stream ``url`` into ``target`` (below ``root``) atomically.

    Raises :class:`UrlExpired`, :class:`BadVideo` or :class:`TransientError` for what the
    server sent, :class:`UsageError` when the target's folder is (or became) unsafe, and
    OSError when the file cannot be written (disk full, read-only folder).
    """
    folder = _open_folder(target.parent, root)
    # One fixed temp name per target: a run killed mid-download leaves it behind and the
    # next attempt removes it (no directory scans, no litter).
    temp = f".{target.name}.part"
    try:
        out = _create_temp(folder, temp, target)
        try:
            with out:
                size, digest = await _stream(http, url, out, max_bytes)
                out.flush()
                # durable before the rename, off the event loop (an fsync can take milliseconds)
                await anyio.to_thread.run_sync(os.fsync, out.fileno())
            os.replace(temp, target.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            _remove(temp, folder)
            raise
    finally:
        os.close(folder)
    return Downloaded(target, size, digest)


def _open_folder(folder: Path, root: Path) -> int:
    """A descriptor of ``folder`` (created if need be), checked to be ``root`` or below it."""
    folder.mkdir(parents=True, exist_ok=True)
    real_root = root.resolve()
    try:
        fd = os.open(folder, _DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _unsafe(folder, "it is a symbolic link or not a folder") from None
        raise
    try:
        resolved = folder.resolve()
        if not resolved.is_relative_to(real_root) or not os.path.samestat(os.fstat(fd), os.stat(resolved)):
            raise _unsafe(folder, f"it leads to {resolved}, outside {real_root}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _create_temp(folder: int, name: str, target: Path) -> BinaryIO:
    """A new temp file in ``folder``: never an existing file, never through a link."""
    _remove(name, folder)
    try:
        fd = os.open(name, _TEMP_FLAGS, 0o644, dir_fd=folder)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ELOOP):
            # Something was put back at the temp name between the removal and the creation.
            raise _unsafe(target.parent / name, "something else keeps appearing at that name") from None
        raise
    return os.fdopen(fd, "wb")


def _remove(name: str, folder: int) -> None:
    try:
        os.unlink(name, dir_fd=folder)  # a link is removed itself, never what it points to
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        pass  # creating the temp file then fails with EEXIST: refused as unsafe


def _unsafe(path: Path, why: str) -> UsageError:
    return UsageError(f"will not write the video at {path}: {why}", hint="remove it")


async def _stream(http: httpx.AsyncClient, url: str, out: BinaryIO, max_bytes: int) -> tuple[int, str]:
    sha = hashlib.sha256()
    head = b""
    size = raw = 0
    try:
        # identity: a video does not compress; an encoding sent anyway is undone, bounded
        async with http.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
            if response.status_code in (403, 404, 410):
                raise UrlExpired(f"download: HTTP {response.status_code} on the file URL", status=response.status_code)
            if response.status_code != 200:
                raise TransientError(f"download: HTTP {response.status_code}", status=response.status_code)
            announced = _content_length(response.headers)
            if announced is not None and announced > max_bytes:
                raise BodyTooLarge(f"the server announces {announced} bytes")
            inflater = Inflater(response.headers.get("content-encoding"), max_bytes)
            async for chunk in response.aiter_raw(CHUNK):
                raw += len(chunk)
                if raw > max_bytes:
                    raise BodyTooLarge(f"more than {max_bytes} bytes arrived")
                for piece in inflater.feed(chunk):
                    if len(head) < MAGIC_END:
                        head = _checked_head((head + piece[:MAGIC_END])[:MAGIC_END])
                    out.write(piece)
                    sha.update(piece)
                    size += len(piece)
            inflater.end()
    except httpx.HTTPError as exc:
        raise TransientError(f"download: {type(exc).__name__}") from None
    except BodyTooLarge as exc:
        raise BadVideo(f"download: {exc}, more than this video can take ({max_bytes} bytes: max_file in the "
                       "model data); not kept") from None
    except BodyError as exc:
        raise BadVideo(f"download: {exc}; not kept") from None
    if announced is not None and raw != announced:
        raise TransientError(f"download: got {raw} bytes, the server announced {announced}")
    if size == 0:
        raise TransientError("download: the file is empty")
    if len(head) < MAGIC_END:
        raise BadVideo(f"download: {size} bytes, too short to be an MP4 video; not kept")
    return size, sha.hexdigest()


def _checked_head(head: bytes) -> bytes:
    """The first bytes seen so far; refused as soon as there are enough to tell it is no MP4."""
    if len(head) >= MAGIC_END and head[4:MAGIC_END] != MP4_MAGIC:
        raise BadVideo("download: what arrived is not an MP4 video (no 'ftyp' box at its start); not kept")
    return head


def _content_length(headers: httpx.Headers) -> int | None:
    value = headers.get("content-length")
    return int(value) if value and value.isascii() and value.isdigit() else None
