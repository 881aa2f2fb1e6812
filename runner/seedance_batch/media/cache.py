"""The media check's use of the ledger's cache (:mod:`seedance_batch.ledger.mediacache`): pure rules.

An answer younger than :attr:`~.probe.MediaPolicy.fresh_seconds` (an hour) is used as
it is; an older one is asked again *conditionally*, with its validators, so a host
whose file did not change answers ``304`` with no body. An entry stamped in the
future (a clock that moved back, a hand edit) is not trusted as fresh.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..ledger import CachedMedia, media_key
from .records import Facts
from .uses import shown_url

__all__ = ["entry_for", "facts_of", "is_fresh"]


def is_fresh(entry: CachedMedia, now: datetime, fresh_seconds: float) -> bool:
    """Whether ``entry`` was checked less than ``fresh_seconds`` before ``now`` (and not after it)."""
    try:
        checked = datetime.fromisoformat(entry.checked_at)
    except ValueError:
        return False
    if checked.tzinfo is None:
        return False  # this version writes UTC stamps with their offset; anything else was not
    return now - timedelta(seconds=fresh_seconds) < checked <= now


def facts_of(entry: CachedMedia) -> Facts:
    """What the host said, as the cache kept it."""
    return Facts(entry.content_type, entry.size, entry.etag, entry.last_modified)


def entry_for(url: str, facts: Facts, now: datetime) -> CachedMedia:
    """The cache entry for ``url``'s facts, checked at ``now``: keyed by the URL's hash, never the URL."""
    return CachedMedia(url_hash=media_key(url), shown=shown_url(url), checked_at=now.isoformat(),
                       content_type=facts.content_type, size=facts.size, etag=facts.etag,
                       last_modified=facts.last_modified)
