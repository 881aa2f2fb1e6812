"""The source media cache: what a media host last said about a URL, kept in the ledger.

A plan or a run checks every source media URL before anything is submitted
(:mod:`seedance_batch.media`); what the host said (content type, size and its
validators, ``ETag`` and ``Last-Modified``) is kept here by URL, so a second plan
within the hour asks nothing, and one after it asks with ``If-None-Match`` /
``If-Modified-Since`` (a ``304`` costs no body). Only answers that reached the file are
kept: a host that was down or a URL that was missing is asked again next time, so a
fixed upload is seen at once.

The key is the sha256 of the URL (:func:`media_key`), never the URL itself: signed URLs
carry their access token in the query string, and a cache lookup always starts from
the manifest's own URL, so the ledger never needs to give it back. ``shown`` is the URL
as every message shows it (its query, fragment and credentials redacted), for a person
reading the ledger.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["CachedMedia", "media_key"]


@dataclass(frozen=True, slots=True)
class CachedMedia:
    """What a media host said about one URL when it was last checked (``checked_at``, ISO 8601 UTC)."""

    url_hash: str
    shown: str
    checked_at: str
    content_type: str | None
    size: int | None
    etag: str | None
    last_modified: str | None


def media_key(url: str) -> str:
    """The cache key of a source media URL: the sha256 of its UTF-8 bytes, in hex."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()
