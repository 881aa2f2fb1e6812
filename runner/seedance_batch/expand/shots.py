"""Everything about one shot that is the same for all of its jobs: a :class:`PreparedShot`.

:func:`prepare_shots` checks the matrices (:mod:`.checks`), measures the whole
manifest before anything is built (:mod:`.limits`), and prepares, per shot, the
combinations, the parameters from ``defaults`` and the shot, where each was
written, its takes (:mod:`.takes`), and the label parts of every axis value, so that
building a job is a handful of dictionary operations (see :mod:`seedance_batch.expand.build`).
The parameters are those without a profile; :mod:`.profiles` lays a profile over them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import Location, ManifestError
from ..manifest import Manifest, ManifestPath, Matrix, MatrixEntry, Shot
from ..manifest.records import Takes
from .checks import ShotNames, matrix_problems
from .limits import within_limits
from .matrix import Axis, Combination, Entry, MatrixSize, combinations, matrix_size
from .params import NAMES as PARAM_NAMES
from .takes import SEED

__all__ = ["PreparedShot", "SharedMatrix", "label_part", "prepare_shots", "slug_part"]

_PARAMS = frozenset(PARAM_NAMES)
_KINDS = ("exclude", "include")
_UNSAFE = re.compile(r"[^\w.+-]+")


@dataclass(slots=True)
class PreparedShot:
    """One shot, prepared: its combinations and what every job of it shares.

    ``takes`` is the ``takes:`` in force (the shot's, else the campaign's; None: none);
    ``seed_axis`` the position of its matrix's ``seed`` axis (None: none), whose values
    are its takes; ``profile`` the profile its parameters were laid out for.
    """

    index: int
    id: str
    location: Location
    private: bool
    matrix_path: ManifestPath
    axes: tuple[Axis, ...]
    combos: list[Combination]
    entries: Sequence[Mapping[str, Any]]
    params: dict[str, Any]
    origins: dict[str, Location]
    vars: dict[str, Any]
    context: dict[str, Any]
    parts: list[list[str]]
    slugs: list[list[str]]
    value_locations: Sequence[Sequence[Location]] = ()
    takes: Takes | None = None
    seed_axis: int | None = None
    profile: str | None = None
    _origin_cache: dict[tuple[Any, ...], Location] = field(default_factory=dict)

    @property
    def named_takes(self) -> bool:
        """Whether its jobs are takes, labelled ``#N`` (``takes:`` set, or a seed axis)."""
        return self.takes is not None or self.seed_axis is not None

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
                    self._origin_cache[key] = locate((*self.matrix_path, "include", entry_index, name))
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


def prepare_shots(manifest: Manifest, errors: list[ManifestError]) -> list[PreparedShot]:
    """Prepare every shot whose matrix is sound; add every problem found to ``errors``.

    Nothing is built before the whole manifest's size is known: past the limits
    (:mod:`.limits`) the answer is one error and no shots.
    """
    names = ShotNames([shot.id for shot in manifest.shots])
    own = {shot.id for shot in manifest.shots if shot.matrix is not None}
    # The campaign's matrix is checked once, even when every shot has its own.
    matrices = {manifest.matrix.path: _checked(manifest, manifest.matrix, names, own, errors)}
    chosen: list[tuple[Shot, SharedMatrix]] = []
    for shot in manifest.shots:
        spec = shot.matrix or manifest.matrix
        if spec.path not in matrices:
            matrices[spec.path] = _checked(manifest, spec, names, set(), errors)
        matrix = matrices[spec.path]
        if matrix is not None:
            chosen.append((shot, matrix))
    if not within_limits(manifest, chosen, errors):
        return []
    prepared = [_prepare(manifest, shot, matrix, errors) for shot, matrix in chosen]
    return [shot for shot in prepared if shot is not None]


def _checked(manifest: Manifest, matrix: Matrix, names: ShotNames, own: set[str], errors: list[ManifestError]) -> SharedMatrix | None:
    found = matrix_problems(manifest, matrix, names, own)
    errors.extend(found)
    return None if found else SharedMatrix(matrix)


class SharedMatrix:
    """One sound matrix (the campaign's or a shot's own) and what the shots using it share.

    Entries are sorted by the shots they name once, not once per shot; the
    combinations for one set of entries are counted and built once (ten shots on
    a 10,000-combination campaign matrix build it once, not ten times).
    """

    def __init__(self, matrix: Matrix) -> None:
        self.path = matrix.path
        self.axes = tuple(Axis(axis.name, axis.values) for axis in matrix.axes)
        self.locations = [axis.locations for axis in matrix.axes]
        self.include = [entry.values for entry in matrix.include]
        lists = {"exclude": matrix.exclude, "include": matrix.include}
        self.entries = {kind: [Entry(e.index, e.values) for e in found] for kind, found in lists.items()}
        # Entries without a shot selector apply to every shot; the others by the shots they name.
        self.everyone = {kind: [e.index for e in found if e.shots is None] for kind, found in lists.items()}
        self.named = {kind: _by_shot(found) for kind, found in lists.items()}
        self.sizes: dict[tuple[Any, ...], MatrixSize] = {}
        self.built: dict[tuple[Any, ...], list[Combination]] = {}
        self.parts = [[label_part(v) or "" for v in axis.values] for axis in self.axes]
        self.slugs = [[slug_part(p) for p in column] for column in self.parts]

    def key(self, shot_id: str) -> tuple[Any, ...]:
        """What tells this shot's combinations apart: the entries that name it (the rest apply to all)."""
        return tuple(tuple(self.named[kind].get(shot_id, ())) for kind in _KINDS)

    def _applying(self, kind: str, key: tuple[Any, ...]) -> list[Entry]:
        own = key[_KINDS.index(kind)]
        indices = sorted({*self.everyone[kind], *own}) if own else self.everyone[kind]
        return [self.entries[kind][i] for i in indices]

    def size(self, key: tuple[Any, ...]) -> MatrixSize:
        """The size of the combinations for ``key`` (raises :class:`~.space.MatrixTooComplex`)."""
        if key not in self.sizes:
            self.sizes[key] = matrix_size(self.axes, self._applying("exclude", key), self._applying("include", key))
        return self.sizes[key]

    def combinations(self, key: tuple[Any, ...]) -> list[Combination]:
        """The combinations for ``key``, built once."""
        if key not in self.built:
            self.built[key] = combinations(self.axes, self._applying("exclude", key), self._applying("include", key))
        return self.built[key]


def _by_shot(entries: Sequence[MatrixEntry]) -> dict[str, list[int]]:
    """Entry indices by the shot ids their ``shot`` selector names."""
    found: dict[str, list[int]] = {}
    for entry in entries:
        for shot_id in dict.fromkeys(entry.shots or ()):  # a name listed twice applies once
            found.setdefault(shot_id, []).append(entry.index)
    return found


def _prepare(manifest: Manifest, shot: Shot, matrix: SharedMatrix, errors: list[ManifestError]) -> PreparedShot | None:
    clashes = [axis.name for axis in matrix.axes if axis.name in shot.params.values]
    for name in clashes:
        errors.append(ManifestError(
            f"shot sets {name!r} and its matrix has an axis {name!r}, so which applies is ambiguous; "
            f"remove one of them",
            location=manifest.locate((*shot.path, name), at_key=True),
        ))
    key = matrix.key(shot.id)
    if not matrix.size(key).combinations:
        errors.append(ManifestError(
            f"shot {shot.id!r} has no jobs: exclude removes every combination of its matrix",
            location=manifest.locate(matrix.path),
        ))
        return None
    takes = shot.takes or manifest.takes
    seed_axis = next((i for i, axis in enumerate(matrix.axes) if axis.name == SEED), None)
    if takes is not None and seed_axis is not None:
        errors.append(ManifestError(
            f"takes: {takes.count} and the matrix's seed axis both make takes of shot {shot.id!r}; "
            "keep one (each value of the seed axis is a take)",
            location=takes.location,
        ))
        return None
    if clashes:
        return None
    context = {"id": shot.id, **({"description": shot.description} if shot.description is not None else {})}
    return PreparedShot(
        index=shot.index, id=shot.id, location=shot.location,
        private=shot.private if shot.private is not None else manifest.private,
        matrix_path=matrix.path, axes=matrix.axes, combos=matrix.combinations(key), entries=matrix.include,
        params={**manifest.defaults.values, **shot.params.values},
        origins={**manifest.defaults.origins, **shot.params.origins},
        vars={**manifest.vars, **shot.vars}, context=context,
        parts=matrix.parts, slugs=matrix.slugs, value_locations=matrix.locations,
        takes=takes, seed_axis=seed_axis,
    )
