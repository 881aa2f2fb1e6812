"""Everything about one shot that is the same for all of its jobs.

:func:`shot_plans` checks the matrices (duplicate values, include/exclude
entries that name no axis or no shot, mapping values where a request parameter
needs a plain value, a shot setting a parameter its matrix varies) and prepares,
per shot, the combinations, the parameters from ``defaults`` and the shot, where
each was written, and the label parts of every axis value, so that building a
job is a handful of dictionary operations (see :mod:`seedance_batch.expand`).

Before any combination is built, the whole manifest is measured
(:func:`~seedance_batch.expand.matrix.matrix_size`): more than :data:`MAX_JOBS` jobs or
:data:`MAX_INCLUDE_MERGES` include merges, or a matrix of more than
:data:`MAX_AXES` axes, is one error line, found in milliseconds, instead of
minutes and gigabytes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import Location, ManifestError
from ..manifest import Manifest, ManifestPath, dotted
from ..manifest.schema_check import did_you_mean
from .matrix import (
    WORK_LIMIT,
    Axis,
    Combination,
    Entry,
    MatrixSize,
    MatrixTooComplex,
    combinations,
    matrix_size,
    value_id,
)

__all__ = [
    "MAX_AXES", "MAX_INCLUDE_MERGES", "MAX_JOBS", "PARAMS", "TEMPLATED",
    "ShotPlan", "label_part", "shot_plans", "slug_part",
]

# The most jobs one manifest may expand to, counted before any is built: half as
# many again as the 100,000 bench/plan_scale.py plans. Measured on the 2-core
# reference VM, the worst manifests at these limits (MAX_AXES axes in every shot's
# own matrix, includes merging everywhere, MAX_EXPANDED_BYTES of text) validate in
# about 4.5 s and 360 MB: inside the promise that validate ends within 10 s and
# 500 MB whatever the manifest, with room for the VM's drift. A bigger campaign is
# several manifests.
MAX_JOBS = 150_000
# The most (combination, include entry) merges one manifest may ask for: each adds a
# key to a combination and an entry to its list of includes. Two per job at MAX_JOBS;
# an entry naming no axis merges into every combination, and a thousand of them on a
# big matrix would otherwise take minutes and gigabytes.
MAX_INCLUDE_MERGES = 300_000
# The most axes one matrix may have: every axis is a key in every combination and
# template context and a part of every label, so it multiplies the cost of each job;
# 2^12 combinations of two-value axes is already a big campaign per shot.
MAX_AXES = 12
# Shot ids listed in one "names no shot" message, and near-miss searches (difflib,
# linear in the number of shots) made per manifest: bounded so 5,000 mistyped entries
# on 5,000 shots stay one short line each, found in milliseconds.
_MAX_LISTED = 10
_MAX_SUGGESTIONS = 50

# Request parameters a manifest may set, in the order the request's input lists them.
PARAMS = ("model", "prompt", "duration", "resolution", "aspect_ratio", "generate_audio",
          "image_urls", "reference_image_urls", "reference_video_urls", "reference_audio_urls")
URL_PARAMS = PARAMS[6:]
TEMPLATED = frozenset({"prompt", *URL_PARAMS})
_SELECTOR = "shot"
_UNSAFE = re.compile(r"[^\w.+-]+")


@dataclass(slots=True)
class ShotPlan:
    """One shot, prepared: its combinations and what every job of it shares."""

    index: int
    id: str
    location: Location
    private: bool
    matrix_path: ManifestPath
    axes: tuple[Axis, ...]
    combos: list[Combination]
    entries: Sequence[Any]
    params: dict[str, Any]
    origins: dict[str, Location]
    vars: dict[str, Any]
    context: dict[str, Any]
    parts: list[list[str]]
    slugs: list[list[str]]
    value_locations: list[list[Location]] = field(default_factory=list)
    _origin_cache: dict[tuple[Any, ...], Location] = field(default_factory=dict)

    def origin(self, combo: Combination, name: str, locate: Any) -> Location:
        """Where the value of ``name`` in ``combo`` was written (axis value or include entry)."""
        if combo.axis_index is not None:
            for position, axis in enumerate(self.axes):
                if axis.name == name:
                    return self.value_locations[position][combo.axis_index[position]]
        for entry_index in reversed(combo.includes):
            if name in self.entries[entry_index]:
                key = (entry_index, name)
                if key not in self._origin_cache:
                    self._origin_cache[key] = locate(self.matrix_path + ("include", entry_index, name))
                return self._origin_cache[key]
        return self.location


def label_part(value: Any) -> str | None:
    """A value as it reads in a job label (a mapping by its ``id``); None to leave out."""
    if isinstance(value, Mapping):
        value = value.get("id")
        if value is None:
            return None
    if isinstance(value, list):
        return None
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    text = str(value)
    if "://" in text and ("?" in text or "#" in text):
        # A signed media URL as an axis value: its token must not reach labels, file
        # names, logs or reports (the request itself keeps the whole URL).
        text = text.split("?", 1)[0].split("#", 1)[0]
    return text


def slug_part(part: str) -> str:
    """A label part as a safe file-name piece: ``9:16`` -> ``9-16``.

    NFC first, so a value typed on macOS (NFD) and the same value typed elsewhere
    make one file name, and the duplicate check sees them as the same. What is
    left is letters, digits, ``_``, ``.``, ``+`` and ``-``: no control or
    bidirectional character and none of the characters Windows refuses. (A slug
    is never a whole file name: it starts with the shot's id and ``_``.)
    """
    return _UNSAFE.sub("-", unicodedata.normalize("NFC", part)).lstrip(".-") or "_"


def shot_plans(manifest: Manifest, errors: list[ManifestError]) -> list[ShotPlan]:
    """Prepare every shot whose matrix is sound; add every problem found to ``errors``.

    Nothing is built before the whole manifest's size is known: past
    :data:`MAX_JOBS` or :data:`MAX_INCLUDE_MERGES` the answer is one error and no plans.
    """
    data = manifest.data
    shots = data["shots"]
    names = _ShotNames([shot["id"] for shot in shots])
    own = {shot["id"] for shot in shots if "matrix" in shot}
    # The campaign's matrix is checked once, even when every shot has its own.
    matrices: dict[ManifestPath, _Matrix | None] = {
        ("matrix",): _checked_matrix(manifest, ("matrix",), data.get("matrix", {}), names, own, errors),
    }
    chosen: list[tuple[int, Mapping[str, Any], _Matrix]] = []
    for index, shot in enumerate(shots):
        path: ManifestPath = ("shots", index, "matrix") if "matrix" in shot else ("matrix",)
        if path not in matrices:
            matrices[path] = _checked_matrix(manifest, path, shot["matrix"], names, set(), errors)
        matrix = matrices[path]
        if matrix is not None:
            chosen.append((index, shot, matrix))
    if not _within_limits(manifest, chosen, errors):
        return []
    plans = [_plan(manifest, index, shot, matrix, errors) for index, shot, matrix in chosen]
    return [plan for plan in plans if plan is not None]


class _ShotNames:
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


class _Matrix:
    """One sound matrix (the campaign's or a shot's own) and what the shots using it share.

    Entries are sorted by the shots they name once, not once per shot; the
    combinations for one set of entries are counted and built once (ten shots on
    a 10,000-combination campaign matrix build it once, not ten times).
    """

    def __init__(
        self, path: ManifestPath, spec: Mapping[str, Any], axes: tuple[Axis, ...], locations: list[list[Location]]
    ) -> None:
        self.path, self.spec, self.axes, self.locations = path, spec, axes, locations
        lists = {kind: spec.get(kind, []) for kind in ("exclude", "include")}
        self.entries = {kind: [Entry(i, {k: v for k, v in e.items() if k != _SELECTOR}) for i, e in enumerate(found)]
                        for kind, found in lists.items()}
        # Entries without a shot selector apply to every shot; the others by the shots they name.
        self.everyone = {kind: [i for i, e in enumerate(found) if e.get(_SELECTOR) is None] for kind, found in lists.items()}
        self.named = {kind: _by_shot(found) for kind, found in lists.items()}
        self.sizes: dict[tuple[Any, ...], MatrixSize] = {}
        self.built: dict[tuple[Any, ...], list[Combination]] = {}
        self.parts = [[label_part(v) or "" for v in axis.values] for axis in axes]
        self.slugs = [[slug_part(p) for p in column] for column in self.parts]

    def key(self, shot_id: str) -> tuple[Any, ...]:
        """What tells this shot's combinations apart: the entries that name it (the rest apply to all)."""
        return tuple(tuple(self.named[kind].get(shot_id, ())) for kind in ("exclude", "include"))

    def _applying(self, kind: str, key: tuple[Any, ...]) -> list[Entry]:
        own = key[0] if kind == "exclude" else key[1]
        indices = sorted({*self.everyone[kind], *own}) if own else self.everyone[kind]
        return [self.entries[kind][i] for i in indices]

    def size(self, key: tuple[Any, ...]) -> MatrixSize:
        """The size of the combinations for ``key`` (raises :class:`MatrixTooComplex`)."""
        if key not in self.sizes:
            self.sizes[key] = matrix_size(self.axes, self._applying("exclude", key), self._applying("include", key))
        return self.sizes[key]

    def combinations(self, key: tuple[Any, ...]) -> list[Combination]:
        """The combinations for ``key``, built once."""
        if key not in self.built:
            self.built[key] = combinations(self.axes, self._applying("exclude", key), self._applying("include", key))
        return self.built[key]


def _by_shot(entries: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    """Entry indices by the shot ids their ``shot`` selector names (a name or a list of names)."""
    found: dict[str, list[int]] = {}
    for i, entry in enumerate(entries):
        selector = entry.get(_SELECTOR)
        ids = [selector] if isinstance(selector, str) else selector if isinstance(selector, list) else []
        for shot_id in dict.fromkeys(s for s in ids if isinstance(s, str)):  # a name listed twice applies once
            found.setdefault(shot_id, []).append(i)
    return found


def _within_limits(
    manifest: Manifest, chosen: list[tuple[int, Mapping[str, Any], _Matrix]], errors: list[ManifestError]
) -> bool:
    """Whether the manifest's jobs and include merges fit the limits, counted without building them."""
    jobs: dict[ManifestPath, list[int]] = {}  # per matrix: [jobs, shots]
    merges, counted = 0, set()
    busiest: tuple[int, ManifestPath, int] = (0, ("matrix",), 0)  # merges, matrix, include entry
    for _, shot, matrix in chosen:
        key = matrix.key(shot["id"])
        try:
            size = matrix.size(key)
        except MatrixTooComplex:
            errors.append(ManifestError(
                f"the exclude entries of this matrix overlap in too many ways to work out which combinations are left "
                f"(more than {WORK_LIMIT:,} steps); write fewer, broader entries or split the matrix",
                location=manifest.locate((*matrix.path, "exclude")),
            ))
            return False
        counts = jobs.setdefault(matrix.path, [0, 0])
        counts[0] += size.combinations
        counts[1] += 1
        if (matrix.path, key) not in counted:  # shots sharing one build merge once
            counted.add((matrix.path, key))
            merges += size.merges
            if size.busiest is not None and size.busiest_merges > busiest[0]:
                busiest = (size.busiest_merges, matrix.path, size.busiest)
    total = sum(n for n, _ in jobs.values())
    if total > MAX_JOBS:
        errors.append(_too_many_jobs(manifest, total, jobs, {m.path: m for _, _, m in chosen}))
    elif merges > MAX_INCLUDE_MERGES:
        most, path, entry = busiest
        errors.append(ManifestError(
            f"the include entries merge into combinations {merges:,} times, more than the limit of "
            f"{MAX_INCLUDE_MERGES:,} (this entry alone merges into {most:,}); name the axis values each entry is for, "
            "or put what every job shares in vars",
            location=manifest.locate((*path, "include", entry)),
        ))
    return total <= MAX_JOBS and merges <= MAX_INCLUDE_MERGES


def _too_many_jobs(
    manifest: Manifest, total: int, jobs: dict[ManifestPath, list[int]], matrices: dict[ManifestPath, _Matrix]
) -> ManifestError:
    """The job-limit error, at the matrix that makes the most jobs."""
    path = max(jobs, key=lambda p: jobs[p][0])
    made, shots = jobs[path]
    axes = matrices[path].axes
    sizes = " x ".join(f"{len(axis.values):,}" for axis in axes)
    plural = "s" if shots != 1 else ""
    if not axes:
        what, where = f"{shots:,} shot{plural} without axes", manifest.locate(("shots",))
        what = what if made == total else f"{made:,} of them from {what}"
    else:
        what, where = f": {sizes} values for {shots:,} shot{plural}", manifest.locate(path)
        what = "this matrix" + (what if made == total else f" makes {made:,} of them{what}")
    return ManifestError(
        f"the manifest expands to {total:,} jobs, more than the limit of {MAX_JOBS:,} ({what})",
        location=where, hint="split the campaign into several manifests, or exclude combinations",
    )


def _checked_matrix(
    manifest: Manifest, path: ManifestPath, spec: Mapping[str, Any], names: _ShotNames, own: set[str],
    errors: list[ManifestError],
) -> _Matrix | None:
    axes, locations = _axes(manifest, path, spec)
    if len(axes) > MAX_AXES:
        errors.append(ManifestError(
            f"the matrix has {len(axes):,} axes, more than the limit of {MAX_AXES}; "
            "move one-value axes to vars, or split the shot",
            location=manifest.locate(path),
        ))
        return None
    found: list[ManifestError] = []
    for position, axis in enumerate(axes):
        found += _axis_problems(axis, locations[position])
    axis_names = [axis.name for axis in axes]
    for kind in ("include", "exclude"):
        for entry_index, entry in enumerate(spec.get(kind, [])):
            entry_path = path + (kind, entry_index)
            found += _entry_problems(manifest, entry_path, kind, entry, axis_names, names, own)
    errors.extend(found)
    return None if found else _Matrix(path, spec, tuple(axes), locations)


def _axes(manifest: Manifest, path: ManifestPath, spec: Mapping[str, Any]) -> tuple[list[Axis], list[list[Location]]]:
    axes, locations = [], []
    for name, values in spec.items():
        if name in ("include", "exclude"):
            continue
        axis_path = path + (name,)
        source = manifest.sources.get(axis_path)
        if source is not None:
            values = source.values
            where = [Location(loc.file, loc.line, loc.col, dotted(axis_path + (i,))) for i, loc in enumerate(source.locations)]
        else:
            where = [manifest.locate(axis_path + (i,)) for i in range(len(values))]
        axes.append(Axis(name, tuple(values)))
        locations.append(where)
    return axes, locations


def _axis_problems(axis: Axis, locations: list[Location]) -> list[ManifestError]:
    found = []
    seen: dict[Any, int] = {}
    for i, value in enumerate(axis.values):
        if axis.name in PARAMS and isinstance(value, Mapping):
            found.append(ManifestError(
                f"axis {axis.name!r} sets the request parameter {axis.name!r}, which takes a plain value, not a mapping",
                location=locations[i],
            ))
        ident = (type(value_id(value)) is bool, value_id(value))
        if ident in seen:
            found.append(ManifestError(
                f"value {value_id(value)!r} appears twice in axis {axis.name!r} (also item {seen[ident]}); "
                "each value makes its own jobs: keep one",
                location=locations[i],
            ))
        seen.setdefault(ident, i)
    return found


def _entry_problems(
    manifest: Manifest, path: ManifestPath, kind: str, entry: Mapping[str, Any],
    names: list[str], shots: _ShotNames, own: set[str],
) -> list[ManifestError]:
    found = []
    selector = entry.get(_SELECTOR)
    for shot_id in [selector] if isinstance(selector, str) else selector or []:
        if shot_id not in shots.known:
            found.append(ManifestError(
                f"{kind} entry names shot {shot_id!r}, which does not exist" + shots.unknown(shot_id),
                location=manifest.locate(path + (_SELECTOR,)),
            ))
        elif shot_id in own:
            found.append(ManifestError(
                f"{kind} entry names shot {shot_id!r}, which has its own matrix, so it never applies; "
                "move the entry into that shot's matrix",
                location=manifest.locate(path + (_SELECTOR,)),
            ))
    for key, value in entry.items():
        if kind == "exclude" and key != _SELECTOR and key not in names:
            found.append(ManifestError(
                f"exclude key {key!r} is not an axis of this matrix, so it would exclude nothing; "
                f"axes: {', '.join(names) or '(none)'}",
                location=manifest.locate(path + (key,), at_key=True),
            ))
        elif key in PARAMS and isinstance(value, Mapping):
            found.append(ManifestError(
                f"{key!r} is a request parameter and takes a plain value, not a mapping",
                location=manifest.locate(path + (key,)),
            ))
    return found


def _plan(
    manifest: Manifest, index: int, shot: Mapping[str, Any], matrix: _Matrix, errors: list[ManifestError]
) -> ShotPlan | None:
    shot_id = shot["id"]
    axes, path = matrix.axes, matrix.path
    clashes = [axis.name for axis in axes if axis.name in shot and axis.name in PARAMS]
    for name in clashes:
        errors.append(ManifestError(
            f"shot sets {name!r} and its matrix has an axis {name!r}, so which applies is ambiguous; "
            f"remove one of them",
            location=manifest.locate(("shots", index, name), at_key=True),
        ))
    key = matrix.key(shot_id)
    if not matrix.size(key).combinations:
        errors.append(ManifestError(
            f"shot {shot_id!r} has no jobs: exclude removes every combination of its matrix",
            location=manifest.locate(path),
        ))
        return None
    if clashes:
        return None
    params, origins = _params(manifest, index, shot)
    data = manifest.data
    context = {"id": shot_id, **({"description": shot["description"]} if "description" in shot else {})}
    return ShotPlan(
        index=index, id=shot_id, location=manifest.locate(("shots", index)),
        private=bool(shot.get("private", manifest.private)), matrix_path=path, axes=axes, combos=matrix.combinations(key),
        entries=matrix.spec.get("include", []), params=params, origins=origins,
        vars={**data.get("vars", {}), **shot.get("vars", {})}, context=context,
        parts=matrix.parts, slugs=matrix.slugs, value_locations=matrix.locations,
    )


def _params(manifest: Manifest, index: int, shot: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Location]]:
    """Parameters from defaults < shot, with where each was written."""
    params: dict[str, Any] = {}
    origins: dict[str, Location] = {}
    for base, source in ((("defaults",), manifest.data.get("defaults", {})), (("shots", index), shot)):
        for name in PARAMS:
            if name in source:
                params[name] = source[name]
                origins[name] = manifest.locate(base + (name,))
    return params, origins
