"""What the media check works with: its policy, what a host said, how asking ended (plain records).

Apart from :mod:`.probe` (which speaks HTTP), so that a check answered whole from the
cache never imports the HTTP stack.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Facts", "MediaPolicy", "Probe"]


@dataclass(frozen=True, slots=True)
class MediaPolicy:
    """How the media check asks: concurrency, timeouts, redirects, and how long an answer stays good."""

    concurrency: int = 8            # URLs asked at once
    connect_seconds: float = 5.0
    read_seconds: float = 10.0
    deadline_seconds: float = 15.0  # one URL: every redirect and the ranged GET together
    max_redirects: int = 5
    fresh_seconds: float = 3600.0   # a cached answer younger than this is used without asking


@dataclass(frozen=True, slots=True)
class Facts:
    """What a host said about a file: its media type (``image/png``), size in bytes and validators."""

    content_type: str | None
    size: int | None
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    """How asking about one URL ended: its :class:`Facts`, ``unchanged`` (a 304 to a
    conditional ask: the cached facts still hold), or a ``problem`` in the user's words."""

    facts: Facts | None = None
    unchanged: bool = False
    problem: str | None = None
    requests: int = 0
