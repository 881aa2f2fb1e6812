"""The SQLite side of the source media cache (:mod:`..mediacache`): the ``media_checks`` table.

One row per URL hash, replaced whole by a newer check. A row this version cannot read
(a hand edit, another tool) is skipped, not an error: a cache entry can always be asked
for again, and a plan must not stop over one. A ledger that predates the table
(migration ``m013_media_checks``), opened only to look, reads as an empty cache.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator
from typing import Any

from ..mediacache import CachedMedia

__all__ = ["read_media_checks", "write_media_checks"]

_COLUMNS = ("url_hash", "shown", "checked_at", "content_type", "size", "etag", "last_modified")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM media_checks WHERE url_hash IN "
_UPSERT = f"""INSERT INTO media_checks ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})
              ON CONFLICT (url_hash) DO UPDATE SET
                  {', '.join(f'{c} = excluded.{c}' for c in _COLUMNS[1:])}"""
# Keys per SELECT: well under SQLite's bound on a statement's parameters (999 in old builds).
_CHUNK = 500


def read_media_checks(db: sqlite3.Connection, url_hashes: Collection[str]) -> dict[str, CachedMedia]:
    """The cached entries of ``url_hashes`` that exist and can be read, by hash."""
    found: dict[str, CachedMedia] = {}
    try:
        for chunk in _chunks(sorted(set(url_hashes))):
            rows = db.execute(f"{_SELECT}({', '.join('?' * len(chunk))})", chunk).fetchall()
            found.update((entry.url_hash, entry) for entry in map(_entry, rows) if entry is not None)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a ledger from before the cache, opened only to look
            return {}
        raise
    return found


def write_media_checks(db: sqlite3.Connection, entries: Collection[CachedMedia]) -> None:
    """Insert or replace each entry, in the caller's transaction."""
    db.executemany(_UPSERT, [tuple(getattr(entry, column) for column in _COLUMNS) for entry in entries])


def _chunks(keys: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start:start + _CHUNK]


def _entry(row: tuple[Any, ...]) -> CachedMedia | None:
    """A row as an entry, when every column holds what this version writes; else None."""
    url_hash, shown, checked_at, content_type, size, etag, last_modified = row
    texts_ok = all(isinstance(v, str) for v in (url_hash, shown, checked_at)) and all(
        v is None or isinstance(v, str) for v in (content_type, etag, last_modified))
    size_ok = size is None or (isinstance(size, int) and size >= 0)
    if not (texts_ok and size_ok):
        return None
    return CachedMedia(url_hash, shown, checked_at, content_type, size, etag, last_modified)
