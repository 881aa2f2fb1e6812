"""Downloading a finished video: streamed to a temp file, verified, renamed into place.

:class:`Downloader` is the run's side: a download at a time per slot, within
``run.timeout``, a fresh file URL asked for when one expired, and what could not be
done recorded. A paid render whose video cannot be saved now (its target is or became
unsafe, what arrived is not the video, ``run.timeout`` passed, the disk is full) stays
``finished``, never ``failed``: a later run downloads it without paying again.

No half file ever sits under the final name: bytes go to a hidden temp file
(``.<name>.part``) in the target folder (same file system, so the final ``os.replace`` is atomic),
the size is checked against ``Content-Length``, the sha256 is computed on the
way, and only then is the file renamed. The API key is never sent to a file URL
(file URLs are signed, and may live on another host).

What arrives is not trusted (the service, or whoever answers for it, may be hostile):

* the body is bounded *while it streams* (``max_bytes``, from the model's data: see
  :func:`seedance_batch.models.max_video_bytes`); an endless body stops there;
* a ``Content-Encoding`` (gzip, deflate) is undone (:mod:`.bodies`), with the bound applied
  to what it inflates to, so a gzip bomb costs ``max_bytes`` at most (``Content-Length``
  counts the encoded bytes, and is checked against those);
* what arrived must look like an MP4 (an ``ftyp`` box at bytes 4..8), else it is a
  :class:`BadVideo`: an HTML error page is never saved as the ``.mp4``;
* the target must stay below the output folder: it is checked before (:func:`safe_target`),
  the folder is opened without following a symbolic link and checked again, and the
  temp file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` in it, so a link planted
  at ``.<name>.part`` (or a folder swapped for one) is never written through.
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

import anyio
import httpx

from ..errors import TransientError, UsageError
from ..models import max_video_bytes
from .bodies import CHUNK, BodyError, BodyTooLarge, Inflater
from .context import RunContext
from .retry import Backoff, retrying, without
from .tracking import Tracked, Tracker

__all__ = ["BadVideo", "Downloaded", "Downloader", "TargetCheck", "UrlExpired", "download", "safe_target"]

# An MP4 file starts with its ``ftyp`` box: 4 bytes of size, then the type.
MP4_MAGIC = b"ftyp"
MAGIC_END = 8
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


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A file safely in place."""

    path: Path
    size: int
    sha256: str


class Downloader:
    """Downloads finished jobs' videos for a run, ``download_concurrency`` at a time."""

    def __init__(self, run: RunContext, tracker: Tracker) -> None:
        self._run = run
        self._tracker = tracker
        self._limiter = anyio.CapacityLimiter(run.settings.download_concurrency)

    async def fetch(self, item: Tracked) -> None:
        """Download a finished job's video (its slot is free afterwards, whatever happened)."""
        run = self._run
        try:
            async with self._limiter:
                got = await self._in_time(item)
        except OSError as exc:
            await self._cannot_save(item, exc)
            return
        finally:
            self._tracker.release(item)
        if got is None:
            return
        await run.ledger.downloaded(run.campaign, item.job.key, item.job.output_path, got.size, got.sha256)
        run.progress.job(item.job.label, "done", f"{got.size} bytes")

    async def _in_time(self, item: Tracked) -> Downloaded | None:
        """The download, within ``run.timeout`` (a body dripping a byte at a time trips no
        read timeout); None when it did not happen (the reason is in the ledger)."""
        settings = self._run.settings
        try:
            target = safe_target(settings.output_dir, item.job.output_path)
            with anyio.move_on_after(settings.real(settings.timeout)):
                return await self._with_refresh(item, target)
        except UsageError as exc:
            await self._not_downloaded(item, "unsafe_target", exc.format())
            return None
        await self._not_downloaded(item, "download_failed",
                                   f"download: not done within run.timeout ({settings.timeout:g} s)")
        return None

    async def _with_refresh(self, item: Tracked, target: Path) -> Downloaded | None:
        """Download from the job's file URL; one that expired is replaced by asking the status again."""
        run, settings = self._run, self._run.settings
        limit = max_video_bytes(item.job.request, run.plan.catalog)
        for refresh in range(settings.url_refreshes + 1):
            url = item.file_url
            if url is None or refresh:
                url = await self._tracker.refresh_url(item)
                if url is None:
                    continue
            # never retried here: an expired URL (refreshed instead), a body that is not the
            # video (the same URL would send it again; a later run tries)
            hook = without(Backoff(settings, (TransientError,)), UrlExpired, BadVideo)
            get = partial(download, run.client.files, url, target, max_bytes=limit, root=settings.output_dir)
            try:
                return await retrying(get, on=hook, attempts=settings.max_attempts)
            except UrlExpired:
                await run.ledger.note(run.campaign, item.job.key, "url_expired", {"refresh": refresh + 1})
            except TransientError as exc:
                await run.ledger.note(run.campaign, item.job.key, "download_failed", {"error": exc.message})
                run.progress.job(item.job.label, "failed", f"{exc.message}; a later run downloads it")
                return None
        run.progress.job(item.job.label, "failed", "download failed; a later run tries again")
        return None

    async def _not_downloaded(self, item: Tracked, kind: str, message: str) -> None:
        await self._run.ledger.note(self._run.campaign, item.job.key, kind, {"error": message})
        self._run.progress.job(item.job.label, "failed", f"{message}; a later run downloads it")

    async def _cannot_save(self, item: Tracked, exc: OSError) -> None:
        """The video could not be written (disk full, read-only folder): the job stays
        ``finished`` (a later run downloads it without paying again), and no more
        renders are paid for that could not be saved either."""
        run = self._run
        why = exc.strerror or type(exc).__name__
        where = run.settings.output_dir / item.job.output_path
        await run.ledger.note(run.campaign, item.job.key, "download_failed", {"error": f"cannot write {where}: {why}"})
        run.progress.job(item.job.label, "failed", f"cannot write {where}: {why}; a later run downloads it")
        run.stops.cannot_save(run.settings.output_dir, why)


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


class TargetCheck:
    """:func:`safe_target` for the many targets of one plan, each folder resolved once.

    What the check before a run uses (a campaign of thousands of jobs has a few folders:
    resolving each of 2,000 targets whole took 97 ms of a run's start-up, this 33 ms); each download checks
    its own target again with :func:`safe_target`, and opens its folder without
    following a link, so a folder swapped for a link during the run is still refused.
    """

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self._root = output_dir.resolve()
        self._folders: dict[Path, Path] = {}

    def __call__(self, relative: str) -> Path:
        """What ``safe_target(output_dir, relative)`` returns, or its refusal."""
        candidate = Path(relative)
        if candidate.is_absolute() or ".." in candidate.parts or not candidate.parts:
            return safe_target(self.output_dir, relative)  # the whole check (and its words when it refuses)
        folder = self._folders.get(candidate.parent)
        if folder is None:
            folder = self._folders[candidate.parent] = (self._root / candidate.parent).resolve()
        # realpath(folder / name) is realpath(realpath(folder) / name): only a link at the name is left to follow
        target = folder / candidate.name
        if target.is_symlink() or not target.is_relative_to(self._root) or target == self._root:
            return safe_target(self.output_dir, relative)
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
