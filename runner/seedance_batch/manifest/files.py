"""Reading a file the manifest names, safely: a regular file, read no further than a limit.

A FIFO would block ``validate`` forever and a device would never end, so only
regular files are read, and never past ``limit + 1`` bytes whatever the file
system says about their size.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["FileRefused", "read_regular", "size_text"]

_READ_CHUNK = 2**20


class FileRefused(Exception):
    """A file that is not a regular file (``why`` says what it is), or is larger than allowed."""

    def __init__(self, why: str, *, too_large: bool = False) -> None:
        super().__init__(why)
        self.why, self.too_large = why, too_large


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Raises :class:`FileRefused` for anything else (a FIFO, a device, a folder, a
    socket; a file larger than ``limit``, read no further than ``limit + 1`` bytes
    whatever ``st_size`` says), and ``OSError`` when it cannot be read.
    """
    _must_be_regular(os.stat(path).st_mode)  # before opening: opening a device can do things
    # O_NONBLOCK: a FIFO swapped in after the stat opens at once instead of blocking.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        _must_be_regular(os.fstat(fd).st_mode)  # what was opened, not what was looked at
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, _READ_CHUNK))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    if left <= 0:
        raise FileRefused(f"is larger than {size_text(limit)}", too_large=True)
    return b"".join(chunks)


def _must_be_regular(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):  # what open() itself says of a folder, so callers word it as before
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    kind = next((word for test, word in kinds if test(mode)), "not a file")
    raise FileRefused(f"is {kind}, not a regular file")


def size_text(limit: int) -> str:
    """``4 MiB``, or ``10 bytes`` for a limit that is not whole MiB."""
    return f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit} bytes"
