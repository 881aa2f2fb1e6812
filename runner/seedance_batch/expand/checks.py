"""The mistakes a matrix can hold, found before any combination is built.

Duplicate values in an axis, include/exclude entries that name no axis or no
shot (or a shot with its own matrix, where they never apply), mapping values
where a request parameter needs a plain value, more than :data:`MAX_AXES` axes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ManifestError
from ..manifest import Manifest, Matrix, MatrixAxis, MatrixEntry
from ..manifest.records import SELECTOR
from ..manifest.schema_check import did_you_mean
from .matrix import value_id
from .params import NAMES as PARAM_NAMES

__all__ = ["MAX_AXES", "ShotNames", "matrix_problems"]

# The most axes one matrix may have: every axis is a key in every combination and
# template context and a part of every label, so it multiplies the cost of each job;
# 2^12 combinations of two-value axes is already a big campaign per shot.
MAX_AXES = 12
# Shot ids listed in one "names no shot" message, and near-miss searches (difflib,
# linear in the number of shots) made per manifest: bounded so 5,000 mistyped entries
# on 5,000 shots stay one short line each, found in milliseconds.
_MAX_LISTED = 10
_MAX_SUGGESTIONS = 50
_PARAMS = frozenset(PARAM_NAMES)


class ShotNames:
    """The campaign's shot ids, for "names no shot" messages: a set to look up, near misses bounded."""

    def __init__(self, ids: list[str]) -> None:
        self.ids, self.known = ids, set(ids)
        self.suggested: dict[str, str | None] = {}

    def unknown(self, shot_id: Any) -> str:
        """What to add to "names shot X, which does not exist": the near miss, or some of the shots."""
        if shot_id not in self.suggested and len(self.suggested) < _MAX_SUGGESTIONS:
            self.suggested[shot_id] = did_you_mean(shot_id, self.ids)
        near = self.suggested.get(shot_id)
        if near:
            return f" (did you mean {near!r}?)"
        listed = ", ".join(self.ids[:_MAX_LISTED])
        more = len(self.ids) - _MAX_LISTED
        return f"; shots: {listed}" + (f" and {more:,} more" if more > 0 else "")


def matrix_problems(manifest: Manifest, matrix: Matrix, names: ShotNames, own: set[str]) -> list[ManifestError]:
    """Every mistake of one matrix; ``own`` holds the shots with a matrix of their own."""
    if len(matrix.axes) > MAX_AXES:
        return [ManifestError(
            f"the matrix has {len(matrix.axes):,} axes, more than the limit of {MAX_AXES}; "
            "move one-value axes to vars, or split the shot",
            location=manifest.locate(matrix.path),
        )]
    found: list[ManifestError] = []
    for axis in matrix.axes:
        found += _axis_problems(axis)
    axis_names = [axis.name for axis in matrix.axes]
    for kind, entries in (("include", matrix.include), ("exclude", matrix.exclude)):
        for entry in entries:
            found += _shot_problems(manifest, kind, entry, names, own)
            found += _key_problems(manifest, kind, entry, axis_names)
    return found


def _axis_problems(axis: MatrixAxis) -> list[ManifestError]:
    found = []
    seen: dict[Any, int] = {}
    for i, value in enumerate(axis.values):
        if axis.name in _PARAMS and isinstance(value, Mapping):
            found.append(ManifestError(
                f"axis {axis.name!r} sets the request parameter {axis.name!r}, which takes a plain value, not a mapping",
                location=axis.locations[i],
            ))
        ident = (type(value_id(value)) is bool, value_id(value))
        if ident in seen:
            found.append(ManifestError(
                f"value {value_id(value)!r} appears twice in axis {axis.name!r} (also item {seen[ident]}); "
                "each value makes its own jobs: keep one",
                location=axis.locations[i],
            ))
        seen.setdefault(ident, i)
    return found


def _shot_problems(manifest: Manifest, kind: str, entry: MatrixEntry, shots: ShotNames, own: set[str]) -> list[ManifestError]:
    """The shots an entry's selector names that do not exist, or that it can never apply to."""
    found = []
    for shot_id in entry.shots or ():
        if shot_id not in shots.known:
            found.append(ManifestError(
                f"{kind} entry names shot {shot_id!r}, which does not exist" + shots.unknown(shot_id),
                location=manifest.locate((*entry.path, SELECTOR)),
            ))
        elif shot_id in own:
            found.append(ManifestError(
                f"{kind} entry names shot {shot_id!r}, which has its own matrix, so it never applies; "
                "move the entry into that shot's matrix",
                location=manifest.locate((*entry.path, SELECTOR)),
            ))
    return found


def _key_problems(manifest: Manifest, kind: str, entry: MatrixEntry, names: list[str]) -> list[ManifestError]:
    """An exclude key that is no axis; a request parameter given a mapping."""
    found = []
    for key, value in entry.values.items():
        if kind == "exclude" and key not in names:
            found.append(ManifestError(
                f"exclude key {key!r} is not an axis of this matrix, so it would exclude nothing; "
                f"axes: {', '.join(names) or '(none)'}",
                location=manifest.locate((*entry.path, key), at_key=True),
            ))
        elif key in _PARAMS and isinstance(value, Mapping):
            found.append(ManifestError(
                f"{key!r} is a request parameter and takes a plain value, not a mapping",
                location=manifest.locate((*entry.path, key)),
            ))
    return found
