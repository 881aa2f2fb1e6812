"""The ledger's contract for the source media cache, run against every backend of the contract suite.

``media_checks`` reads entries by URL hash (a ledger from before the cache, opened only to
look, reads as an empty one); ``save_media_checks`` inserts or replaces them in one
transaction, and is refused on a read-only opening. (That the checker never hands it a
full URL is tests/test_media_check.py's.)
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from seedance_batch.errors import LedgerError
from seedance_batch.ledger import AsyncLedger, CachedMedia, Ledger, media_key, open_ledger
from test_ledger_contract import led, where  # the suite's own fixtures: every backend, fresh

__all__ = ["led", "where"]  # used as fixtures, not unused imports

OLD_LEDGER = Path(__file__).parent / "data" / "ledger-86a5b1b.sqlite"  # written before the cache existed
SIGNED = "https://cdn.example.com/hero.png?X-Amz-Signature=0123456789abcdef"


def entry(url: str = SIGNED, **changes: object) -> CachedMedia:
    base = CachedMedia(url_hash=media_key(url), shown="https://cdn.example.com/hero.png?REDACTED",
                       checked_at="2026-04-19T10:00:00+00:00", content_type="image/png", size=1234,
                       etag='"v1"', last_modified="Sun, 19 Apr 2026 09:00:00 GMT")
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_saved_entry_is_read_back_by_its_hash_and_unknown_hashes_are_absent(led: Ledger) -> None:
    saved = entry()
    led.save_media_checks([saved])
    assert led.media_checks([saved.url_hash, media_key("https://elsewhere/x.png")]) == {saved.url_hash: saved}
    assert led.media_checks([]) == {}


def test_a_newer_check_replaces_the_entry_whole(led: Ledger) -> None:
    led.save_media_checks([entry()])
    newer = entry(checked_at="2026-04-19T12:00:00+00:00", etag=None, size=None, content_type="image/webp")
    led.save_media_checks([newer])
    assert led.media_checks([newer.url_hash]) == {newer.url_hash: newer}


def test_many_entries_in_one_call_are_all_kept(led: Ledger) -> None:
    many = [entry(f"https://cdn.example.com/{i}.png", shown=f"https://cdn.example.com/{i}.png") for i in range(1203)]
    led.save_media_checks(many)
    found = led.media_checks([e.url_hash for e in many])
    assert found == {e.url_hash: e for e in many}


def test_the_async_facade_does_the_same(led: Ledger) -> None:
    async def calls() -> dict[str, CachedMedia]:
        facade = AsyncLedger(led)
        await facade.save_media_checks([entry()])
        return await facade.media_checks([entry().url_hash])

    assert anyio.run(calls) == {entry().url_hash: entry()}


def test_a_read_only_opening_reads_the_cache_and_refuses_to_write_it(where: str) -> None:
    with open_ledger(where) as writer:
        writer.save_media_checks([entry()])
    looking = open_ledger(where, read_only=True)
    assert looking is not None
    with looking:
        assert looking.media_checks([entry().url_hash]) == {entry().url_hash: entry()}
        with pytest.raises(LedgerError):
            looking.save_media_checks([entry(size=1)])
        assert looking.media_checks([entry().url_hash])[entry().url_hash].size == 1234


def test_an_sqlite_ledger_from_before_the_cache_reads_as_an_empty_one(tmp_path: Path) -> None:
    old = tmp_path / "ledger.sqlite"
    shutil.copyfile(OLD_LEDGER, old)
    looking = open_ledger(old, read_only=True)
    assert looking is not None
    with looking:
        assert looking.media_checks([entry().url_hash]) == {}
    with open_ledger(old) as run:  # a writable opening migrates it: the cache is there
        run.save_media_checks([entry()])
        assert run.media_checks([entry().url_hash]) == {entry().url_hash: entry()}


def test_an_sqlite_row_this_version_cannot_read_is_left_out_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as led:
        led.save_media_checks([entry(), entry("https://cdn.example.com/b.png")])
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE media_checks SET size = 'huge' WHERE url_hash = ?", (entry().url_hash,))
    db.close()
    with open_ledger(path) as led:
        found = led.media_checks([entry().url_hash, media_key("https://cdn.example.com/b.png")])
    assert list(found) == [media_key("https://cdn.example.com/b.png")]
