"""The manifest as typed, frozen records: built once at load, read by every later stage.

:func:`build_manifest` turns schema-valid data (and what its ``from:`` files
loaded) into a :class:`Manifest`: its shots, matrices with their axes and
include/exclude entries, the parameters each level sets, output, budget and run
settings, profiles (named parameter sets) and takes, each carrying where it was
written. Nothing after the loader walks the YAML's mappings with string keys.

:func:`from_files` is the one exception, by necessity: the ``from:`` axes are found
before the schema has said the manifest is valid (so that a missing data file is
reported together with a typo elsewhere), so it reads data of any shape.

Mappings in the records are read-only views; the values inside them (axis values,
vars) are the data as written, which templates read through an immutable sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import Location
from ..expand.params import NAMES as PARAM_NAMES

if TYPE_CHECKING:
    from .sources import AxisSource
    from .yamlsrc import Pos

__all__ = [
    "SELECTOR", "Budget", "FromFile", "Manifest", "ManifestPath", "Matrix", "MatrixAxis", "MatrixEntry", "Output",
    "Params", "Shot", "Takes", "build_manifest", "dotted", "from_files", "locate",
]

ManifestPath = tuple["str | int", ...]
Locate = Callable[[ManifestPath], Location]
# The key of an include/exclude entry naming the shots it applies to.
SELECTOR = "shot"
_ENTRY_LISTS = ("include", "exclude")
_DATA_SUFFIXES = (".csv", ".yaml", ".yml", ".json")
# The key a level (defaults, a shot) sets its number of takes with; a shot's adjustments to profiles.
TAKES, PROFILES = "takes", "profiles"
_NO_PROFILES: Mapping[str, Params] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class FromFile:
    """A matrix axis written ``{from: file}``: the axis's manifest path and the file it names."""

    path: ManifestPath
    file: str


@dataclass(frozen=True, slots=True)
class MatrixAxis:
    """One axis: its values in declared order, where each was written, the file it came from."""

    name: str
    values: tuple[Any, ...]
    locations: tuple[Location, ...]
    source: AxisSource | None = None


@dataclass(frozen=True, slots=True)
class MatrixEntry:
    """One include or exclude entry.

    ``values`` are its keys but the ``shot`` selector; ``shots`` the ids that selector
    names, as written (None: the entry applies to every shot); ``path`` its manifest path.
    """

    index: int
    values: Mapping[str, Any]
    shots: tuple[str, ...] | None
    path: ManifestPath


@dataclass(frozen=True, slots=True)
class Matrix:
    """A matrix (the campaign's, or a shot's own): its axes, then include and exclude entries."""

    path: ManifestPath
    location: Location
    axes: tuple[MatrixAxis, ...]
    include: tuple[MatrixEntry, ...] = ()
    exclude: tuple[MatrixEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Params:
    """The request parameters one level (``defaults`` or a shot) sets, in table order, and where."""

    values: Mapping[str, Any] = field(default_factory=dict)
    origins: Mapping[str, Location] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Takes:
    """``takes: N`` as one level (``defaults`` or a shot) wrote it: how many, and where."""

    count: int
    location: Location


@dataclass(frozen=True, slots=True)
class Shot:
    """One shot as written; ``matrix`` is its own (None: it uses the campaign's).

    ``takes`` is its own ``takes:`` (None: the campaign's default); ``profiles`` its
    adjustments to the manifest's profiles, by profile name, in the order written.
    """

    index: int
    id: str
    description: str | None
    private: bool | None
    vars: Mapping[str, Any]
    params: Params
    matrix: Matrix | None
    location: Location
    takes: Takes | None = None
    profiles: Mapping[str, Params] = field(default_factory=lambda: _NO_PROFILES)

    @property
    def path(self) -> ManifestPath:
        """``("shots", index)``."""
        return ("shots", self.index)


@dataclass(frozen=True, slots=True)
class Output:
    """Where renders go: ``dir``, and the ``filename`` template (None: the default layout)."""

    dir: str
    filename: str | None
    filename_location: Location | None


@dataclass(frozen=True, slots=True)
class Budget:
    """The campaign's spending limit (None: none), and where it was written."""

    max_usd: Decimal | None
    location: Location


@dataclass(frozen=True, slots=True)
class Manifest:
    """A loaded, schema-valid manifest.

    ``matrix`` is the campaign's (no axes when it has none); ``run`` the run settings
    as written (read-only; RunSettings.build checks them). ``profiles`` are the named
    parameter sets in the order written, ``profile`` the one used without ``--profile``
    (None without profiles); ``takes`` is ``defaults.takes``.
    """

    path: Path
    name: str
    description: str | None
    sha256: str
    private: bool
    vars: Mapping[str, Any]
    defaults: Params
    matrix: Matrix
    shots: tuple[Shot, ...]
    budget: Budget
    output: Output
    run: Mapping[str, Any]
    profiles: Mapping[str, Params] = field(default_factory=lambda: _NO_PROFILES)
    profile: str | None = None
    takes: Takes | None = None
    positions: Pos | None = field(default=None, repr=False, compare=False)

    @property
    def file(self) -> str:
        """The manifest's file name as the user gave it (used in error lines)."""
        return str(self.path)

    @property
    def budget_usd(self) -> Decimal | None:
        """``budget.max_usd``."""
        return self.budget.max_usd

    @property
    def output_dir(self) -> str:
        """``output.dir``."""
        return self.output.dir

    @property
    def output_filename(self) -> str | None:
        """``output.filename``."""
        return self.output.filename

    def locate(self, path: ManifestPath, *, at_key: bool = False) -> Location:
        """Where the value at ``path`` was written (or its nearest written parent).

        With ``at_key`` the position of the mapping key itself, for "unknown key".
        """
        return locate(self.file, self.positions, path, at_key=at_key)


def dotted(path: ManifestPath) -> str:
    """``("shots", 1, "duration")`` -> ``shots[1].duration``, the user's notation."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text.lstrip(".")


def locate(file: str, root: Pos | None, path: ManifestPath, *, at_key: bool = False) -> Location:
    """Map a path in the data back to a line and column of the YAML source."""
    line, col = (root.line, root.col) if root is not None else (None, None)
    node = root
    for index, part in enumerate(path):
        items = node.items if node is not None else None
        if isinstance(items, dict) and part in items:
            key_line, key_col, node = items[part]
            last = index == len(path) - 1
            line, col = (key_line, key_col) if at_key and last else (node.line, node.col)
        elif isinstance(items, list) and isinstance(part, int) and 0 <= part < len(items):
            node = items[part]
            line, col = node.line, node.col
        else:
            break
    return Location(file=file, line=line, col=col, path=dotted(path) or None)


def from_files(data: Any) -> list[FromFile]:
    """Every axis of the manifest's matrices written ``{from: file}``, in manifest order.

    Reads data of any shape (see the module's docstring); a name the schema refuses
    (not .csv/.yaml/.yml/.json) is left to the schema, which reports it once.
    """
    if not isinstance(data, dict):
        return []
    matrices: list[tuple[ManifestPath, Any]] = [(("matrix",), data.get("matrix"))]
    shots = data.get("shots")
    if isinstance(shots, list):
        matrices += [(("shots", i, "matrix"), s.get("matrix")) for i, s in enumerate(shots) if isinstance(s, dict)]
    found = []
    for base, matrix in matrices:
        if not isinstance(matrix, dict):
            continue
        for axis, spec in matrix.items():
            name = spec.get("from") if isinstance(spec, dict) else None
            if isinstance(name, str) and name.endswith(_DATA_SUFFIXES) and axis not in _ENTRY_LISTS:
                found.append(FromFile((*base, axis), name))
    return found


def build_manifest(
    path: Path, sha256: str, data: Mapping[str, Any], sources: Mapping[ManifestPath, AxisSource], positions: Pos | None,
) -> Manifest:
    """The records of a schema-valid manifest whose ``from:`` files loaded into ``sources``."""
    file = str(path)

    def where(at: ManifestPath) -> Location:
        return locate(file, positions, at)

    budget, output = data.get("budget", {}), data.get("output", {})
    max_usd = budget.get("max_usd")
    return Manifest(
        path=path, name=data["name"], description=data.get("description"), sha256=sha256,
        private=bool(data.get("private", False)), vars=MappingProxyType(data.get("vars", {})),
        defaults=_params(data.get("defaults", {}), ("defaults",), where),
        matrix=_matrix(data.get("matrix", {}), ("matrix",), sources, where),
        shots=tuple(_shot(index, shot, sources, where) for index, shot in enumerate(data["shots"])),
        budget=Budget(Decimal(str(max_usd)) if max_usd is not None else None, where(("budget", "max_usd"))),
        output=Output(output.get("dir", "renders"), output.get("filename"),
                      where(("output", "filename")) if "filename" in output else None),
        run=MappingProxyType(data.get("run", {})),
        profiles=_profiles(data.get(PROFILES, {}), (PROFILES,), where),
        profile=data.get("profile"),
        takes=_takes(data.get("defaults", {}), ("defaults",), where),
        positions=positions,
    )


def _shot(index: int, spec: Mapping[str, Any], sources: Mapping[ManifestPath, AxisSource], where: Locate) -> Shot:
    base: ManifestPath = ("shots", index)
    own = spec.get("matrix")
    return Shot(
        index=index, id=spec["id"], description=spec.get("description"), private=spec.get("private"),
        vars=MappingProxyType(spec.get("vars", {})), params=_params(spec, base, where),
        matrix=None if own is None else _matrix(own, (*base, "matrix"), sources, where),
        location=where(base),
        takes=_takes(spec, base, where),
        profiles=_profiles(spec.get(PROFILES, {}), (*base, PROFILES), where),
    )


def _params(spec: Mapping[str, Any], base: ManifestPath, where: Locate) -> Params:
    names = [name for name in PARAM_NAMES if name in spec]
    return Params(MappingProxyType({name: spec[name] for name in names}),
                  MappingProxyType({name: where((*base, name)) for name in names}))


def _takes(spec: Mapping[str, Any], base: ManifestPath, where: Locate) -> Takes | None:
    count = spec.get(TAKES)
    return None if count is None else Takes(int(count), where((*base, TAKES)))


def _profiles(spec: Mapping[str, Any], base: ManifestPath, where: Locate) -> Mapping[str, Params]:
    """Profile name -> the parameters it sets (a campaign's profiles, or a shot's adjustments to them)."""
    return MappingProxyType({name: _params(values, (*base, name), where) for name, values in spec.items()})


def _matrix(spec: Mapping[str, Any], path: ManifestPath, sources: Mapping[ManifestPath, AxisSource], where: Locate) -> Matrix:
    axes = [_axis(name, values, (*path, name), sources, where) for name, values in spec.items() if name not in _ENTRY_LISTS]
    include, exclude = (tuple(_entry(i, e, (*path, kind, i)) for i, e in enumerate(spec.get(kind, []))) for kind in _ENTRY_LISTS)
    return Matrix(path=path, location=where(path), axes=tuple(axes), include=include, exclude=exclude)


def _axis(name: str, values: Any, path: ManifestPath, sources: Mapping[ManifestPath, AxisSource], where: Locate) -> MatrixAxis:
    source = sources.get(path)
    if source is None:
        return MatrixAxis(name, tuple(values), tuple(where((*path, i)) for i in range(len(values))))
    # A value from a data file: the file's line, the manifest's path (what the user would change).
    locations = tuple(Location(at.file, at.line, at.col, dotted((*path, i))) for i, at in enumerate(source.locations))
    return MatrixAxis(name, source.values, locations, source)


def _entry(index: int, spec: Mapping[str, Any], path: ManifestPath) -> MatrixEntry:
    selector = spec.get(SELECTOR)
    shots = None if selector is None else (selector,) if isinstance(selector, str) else tuple(selector)
    return MatrixEntry(index, MappingProxyType({k: v for k, v in spec.items() if k != SELECTOR}), shots, path)
