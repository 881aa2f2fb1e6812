"""The source media a request may point at: which kind each URL field takes, and what each kind may be.

Data, not code: the ``media`` section of ``schemas/models.json`` (or of a ``--prices``
copy; a copy without one gets the bundled file's, so an older copy keeps working).
``fields`` maps each URL field of the request (``image_urls``, ``reference_video_urls``...)
to a kind; each kind lists the content types it accepts (``image/png``; ``video/*``
for any video) and its largest file. The checker (:mod:`seedance_batch.media`) holds
what a media host says about a URL against these.

Every URL field of the parameter table must have a kind: a field nobody described
would go unchecked without a word, so such a file is refused on load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .._data import data_path
from ..errors import Location, PriceFileError
from ..expand.params import PARAMS, URLS

__all__ = ["URL_FIELDS", "MediaKind", "MediaLimits", "bundled_media_limits", "media_limits"]

MIB = 1 << 20
# The request's URL fields, in table order: each needs a media kind.
URL_FIELDS: tuple[str, ...] = tuple(p.name for p in PARAMS if p.kind == URLS and p.in_input)


@dataclass(frozen=True, slots=True)
class MediaKind:
    """One kind of source media (``image``): the content types it accepts and its largest file."""

    name: str
    content_types: tuple[str, ...]
    max_bytes: int

    def accepts(self, content_type: str) -> bool:
        """Whether a media type (``image/png``, lower case, no parameters) is one of this kind's."""
        major = content_type.split("/", 1)[0]
        return any(t == content_type or (t.endswith("/*") and t[:-2] == major) for t in self.content_types)

    @property
    def shown_types(self) -> str:
        """``image/jpeg, image/png or image/webp``: the accepted types, as a message says them."""
        *first, last = self.content_types
        return f"{', '.join(first)} or {last}" if first else last

    @property
    def shown_limit(self) -> str:
        """``10 MiB``: the largest file, as a message says it."""
        return f"{self.max_bytes / MIB:g} MiB"


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """Which kind each URL field of a request takes (``image_urls`` -> the ``image`` kind)."""

    fields: Mapping[str, MediaKind]

    def kind_of(self, field: str) -> MediaKind | None:
        """The kind of media ``field`` takes; None when it is not a URL field."""
        return self.fields.get(field)


def media_limits(raw: Mapping[str, Any] | None, path: Path) -> MediaLimits:
    """The ``media`` section of a price file (already schema-checked), as limits; None: the bundled one's."""
    if raw is None:
        return bundled_media_limits()
    kinds = {name: MediaKind(name, tuple(spec["content_types"]), int(float(spec["max_mib"]) * MIB))
             for name, spec in raw["kinds"].items()}
    fields: dict[str, MediaKind] = {}
    for field, kind in raw["fields"].items():
        where = Location(file=str(path), path=f"media.fields.{field}")
        if field not in URL_FIELDS:
            raise PriceFileError(f"{field!r} is not a URL field of the request", location=where,
                                 hint=f"URL fields: {', '.join(URL_FIELDS)}")
        if kind not in kinds:
            raise PriceFileError(f"kind {kind!r} is not described under media.kinds", location=where,
                                 hint=f"kinds: {', '.join(kinds)}")
        fields[field] = kinds[kind]
    missing = [field for field in URL_FIELDS if field not in fields]
    if missing:
        raise PriceFileError(f"{', '.join(missing)} has no media kind; every URL field needs one, or its "
                             "URLs would go unchecked", location=Location(file=str(path), path="media.fields"))
    return MediaLimits(MappingProxyType(fields))


@cache
def bundled_media_limits() -> MediaLimits:
    """The limits of the bundled ``schemas/models.json`` (for a price file without a ``media`` section)."""
    path = data_path("models.json")
    return media_limits(json.loads(path.read_text(encoding="utf-8"))["media"], path)
