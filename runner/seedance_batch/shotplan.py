"""Everything about one shot that is the same for all of its jobs.

:func:`shot_plans` checks the matrices (duplicate values, include/exclude
entries that name no axis or no shot, mapping values where a request parameter
needs a plain value, a shot setting a parameter its matrix varies) and prepares,
per shot, the combinations, the parameters from ``defaults`` and the shot, where
each was written, and the label parts of every axis value, so that building a
job is a handful of dictionary operations (see :mod:`seedance_batch.expand`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import Location, ManifestError
from .manifest import Manifest, ManifestPath, dotted
from .matrix import Axis, Combination, Entry, combinations, value_id
from .schema_check import did_you_mean

__all__ = ["PARAMS", "TEMPLATED", "ShotPlan", "label_part", "shot_plans", "slug_part"]

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
    """A label part as a safe file-name piece: ``9:16`` -> ``9-16``."""
    return _UNSAFE.sub("-", part).lstrip(".-") or "_"


def shot_plans(manifest: Manifest, errors: list[ManifestError]) -> list[ShotPlan]:
    """Prepare every shot whose matrix is sound; add every problem found to ``errors``."""
    data = manifest.data
    shots = data["shots"]
    ids = [shot["id"] for shot in shots]
    own = {shot["id"] for shot in shots if "matrix" in shot}
    matrices: dict[ManifestPath, tuple[tuple[Axis, ...], list[list[Location]]] | None] = {}
    # The campaign's matrix is checked once, even when every shot has its own.
    matrices[("matrix",)] = _checked_matrix(manifest, ("matrix",), data.get("matrix", {}), ids, own, errors)
    shared: dict[tuple[Any, ...], list[Combination]] = {}
    plans = []
    for index, shot in enumerate(shots):
        path: ManifestPath = ("shots", index, "matrix") if "matrix" in shot else ("matrix",)
        spec = shot["matrix"] if "matrix" in shot else data.get("matrix", {})
        if path not in matrices:
            matrices[path] = _checked_matrix(manifest, path, spec, ids, set(), errors)
        if matrices[path] is None:
            continue
        plan = _plan(manifest, index, shot, path, spec, matrices[path], shared, errors)  # type: ignore[arg-type]
        if plan is not None:
            plans.append(plan)
    return plans


def _checked_matrix(
    manifest: Manifest, path: ManifestPath, spec: Mapping[str, Any], ids: list[str], own: set[str], errors: list[ManifestError]
) -> tuple[tuple[Axis, ...], list[list[Location]]] | None:
    axes, locations = _axes(manifest, path, spec)
    found: list[ManifestError] = []
    for position, axis in enumerate(axes):
        found += _axis_problems(axis, locations[position])
    names = [axis.name for axis in axes]
    for kind in ("include", "exclude"):
        for entry_index, entry in enumerate(spec.get(kind, [])):
            entry_path = path + (kind, entry_index)
            found += _entry_problems(manifest, entry_path, kind, entry, names, ids, own)
    errors.extend(found)
    return None if found else (tuple(axes), locations)


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
    names: list[str], ids: list[str], own: set[str],
) -> list[ManifestError]:
    found = []
    selector = entry.get(_SELECTOR)
    for shot_id in [selector] if isinstance(selector, str) else selector or []:
        if shot_id not in ids:
            near = did_you_mean(shot_id, ids)
            found.append(ManifestError(
                f"{kind} entry names shot {shot_id!r}, which does not exist"
                + (f" (did you mean {near!r}?)" if near else f"; shots: {', '.join(ids)}"),
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


def _applies(entry: Mapping[str, Any], shot_id: str) -> bool:
    selector = entry.get(_SELECTOR)
    return selector is None or shot_id == selector or (isinstance(selector, list) and shot_id in selector)


def _entries(spec: Mapping[str, Any], kind: str, shot_id: str) -> list[Entry]:
    return [
        Entry(i, {k: v for k, v in entry.items() if k != _SELECTOR})
        for i, entry in enumerate(spec.get(kind, []))
        if _applies(entry, shot_id)
    ]


def _combinations(
    shared: dict[tuple[Any, ...], list[Combination]], path: ManifestPath, spec: Mapping[str, Any],
    axes: tuple[Axis, ...], shot_id: str,
) -> list[Combination]:
    """The shot's combinations; shots of one matrix that the same entries apply to share them.

    (Ten shots on a 10,000-combination campaign matrix build it once, not ten times.)
    """
    exclude, include = _entries(spec, "exclude", shot_id), _entries(spec, "include", shot_id)
    key = (path, tuple(e.index for e in exclude), tuple(e.index for e in include))
    if key not in shared:
        shared[key] = combinations(axes, exclude, include)
    return shared[key]


def _plan(
    manifest: Manifest, index: int, shot: Mapping[str, Any], path: ManifestPath, spec: Mapping[str, Any],
    matrix: tuple[tuple[Axis, ...], list[list[Location]]], shared: dict[tuple[Any, ...], list[Combination]],
    errors: list[ManifestError],
) -> ShotPlan | None:
    shot_id = shot["id"]
    axes, locations = matrix
    clashes = [axis.name for axis in axes if axis.name in shot and axis.name in PARAMS]
    for name in clashes:
        errors.append(ManifestError(
            f"shot sets {name!r} and its matrix has an axis {name!r}, so which applies is ambiguous; "
            f"remove one of them",
            location=manifest.locate(("shots", index, name), at_key=True),
        ))
    combos = _combinations(shared, path, spec, axes, shot_id)
    if not combos:
        errors.append(ManifestError(
            f"shot {shot_id!r} has no jobs: exclude removes every combination of its matrix",
            location=manifest.locate(path),
        ))
    if clashes or not combos:
        return None
    params, origins = _params(manifest, index, shot)
    data = manifest.data
    parts = [[label_part(v) or "" for v in axis.values] for axis in axes]
    context = {"id": shot_id, **({"description": shot["description"]} if "description" in shot else {})}
    return ShotPlan(
        index=index, id=shot_id, location=manifest.locate(("shots", index)),
        private=bool(shot.get("private", manifest.private)), matrix_path=path, axes=axes, combos=combos,
        entries=spec.get("include", []), params=params, origins=origins,
        vars={**data.get("vars", {}), **shot.get("vars", {})}, context=context,
        parts=parts, slugs=[[slug_part(p) for p in column] for column in parts], value_locations=locations,
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
