"""Takes: several renders of one combination, each its own seed, its own request and its own job.

A shot renders takes when it (or ``defaults``) sets ``takes: N``, or when its matrix has
a ``seed`` axis (each seed value is a take, numbered by its place in the axis). A take is
named by its *take label*, the combination's label and its number: ``hero/de-DE/9:16#2``.

Seeds are derived, not drawn, so a re-plan gives the same takes and a take's final keeps
its draft's seed: :func:`take_seed` hashes the take label (the shot id, the combination's
values as the label shows them, the take number) into the seed range every model of the
catalog accepts. Not the profile: a take is the same take in every profile. Not the
campaign: the campaign names folders and ledger rows, not the render, so a shot copied
into another campaign renders the same takes. A combination value's other keys (a
locale's ``market`` text) are not in the label either: refining a prompt keeps its takes'
seeds. A ``seed:`` written in the manifest is pinned and wins.

A take's identity across profiles (:func:`combination_id` and its number) is what the
review groups takes by, and how a final finds the draft it promotes. This module is the
one place both are computed (the review's :mod:`seedance_batch.review.takes` reads them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..errors import Location
    from ..manifest.records import Takes

__all__ = [
    "SEED", "SEED_RANGE", "TAKE_AXES", "TAKE_SEED_PREFIX", "combination_id", "combination_values", "take_label",
    "take_seed", "with_seed",
]

# The request parameter a take's randomness is pinned by.
SEED = "seed"
# The seeds a take may get when the catalog gives no range: a 32-bit unsigned integer.
SEED_RANGE = (0, 2**32 - 1)
# Matrix axes whose values are takes of one combination, not combinations of their own.
TAKE_AXES = frozenset({SEED})
# Hashed before the take label: a versioned name for the derivation, so that a future one
# (if ever needed) cannot give the same seeds by accident.
TAKE_SEED_PREFIX = "seedance-batch/take-seed/1:"


def take_label(combination_label: str, take: int) -> str:
    """``hero/de-DE/9:16`` and 2 -> ``hero/de-DE/9:16#2``."""
    return f"{combination_label}#{take}"


def take_seed(label: str, seeds: tuple[int, int] = SEED_RANGE) -> int:
    """The seed of the take labelled ``label`` (``hero/de-DE/9:16#2``), within ``seeds`` (both ends included).

    ``low + int(first 8 bytes of sha256(TAKE_SEED_PREFIX + label)) mod (high - low + 1)``:
    the same label, the same seed, on every machine and every run.
    """
    low, high = seeds
    digest = hashlib.sha256((TAKE_SEED_PREFIX + label).encode("utf-8", "surrogatepass")).digest()
    return low + int.from_bytes(digest[:8], "big") % (high - low + 1)


def with_seed(params: dict[str, Any], origins: Mapping[str, Location], label: str, takes: Takes,
              seeds: tuple[int, int]) -> tuple[dict[str, Any] | None, Mapping[str, Location], str | None]:
    """A take's parameters and origins with its seed: derived from its take label (written where
    ``takes:`` is), unless the manifest pins one; with a problem (and None) when ``takes:`` above 1
    and a pinned seed would make every take the same request."""
    pinned = params.get(SEED)
    if pinned is None:
        return {**params, SEED: take_seed(label, seeds)}, {**origins, SEED: takes.location}, None
    if takes.count > 1:
        return None, origins, (
            f"takes: {takes.count} would render {takes.count} identical requests, since seed {pinned} is pinned "
            "here; remove seed (each take gets its own) or make seed a matrix axis (each value a take)")
    return params, origins, None


def combination_values(pairs: Iterable[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    """A combination's (axis, value) pairs without the axes that tell takes apart."""
    return tuple((axis, value) for axis, value in pairs if axis not in TAKE_AXES)


def combination_id(shot: str, combination: Mapping[str, Any]) -> str:
    """The identity of a shot's combination: the same for every take of it, in every profile.

    A digest of the shot and the raw matrix values (not their shown, redacted form: two
    signed URLs that differ only in their query are two combinations), so the ledger
    holds no value of the manifest, only which takes belong together.
    """
    values = combination_values(combination.items())
    canonical = json.dumps([shot, [[axis, value] for axis, value in values]], sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]
