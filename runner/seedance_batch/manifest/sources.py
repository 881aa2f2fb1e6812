"""Matrix axes loaded from files: ``locale: {from: locales.csv}``.

A ``from:`` path is relative to the manifest's folder and must stay inside it
(no absolute paths, no ``..``, no symlink leading out). A .csv gives one mapping
per row (header row = keys, an ``id`` column required); .yaml/.yml/.json give a
list of values. Every loaded value is checked like an inline matrix value, and
remembers the line it came from.

Data files are regular files only (:mod:`.files`) and bounded, whatever the
file system says about their size: one file at most :data:`MAX_BYTES` and
:data:`MAX_VALUES` values; all the files of one manifest together at most
:data:`MAX_FILES` files, :data:`MAX_TOTAL_BYTES` and :data:`MAX_TOTAL_VALUES`
values. JSON is held to what YAML already is (:mod:`.jsondata`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ..errors import Location, ManifestError
from . import schema_check
from .files import FileRefused, read_regular, size_text
from .jsondata import parse_json
from .records import FromFile, ManifestPath
from .yamlsrc import YamlProblem, load_yaml, shown

__all__ = ["MAX_BYTES", "MAX_FILES", "MAX_TOTAL_BYTES", "MAX_TOTAL_VALUES", "MAX_VALUES", "AxisSource", "load_sources"]

# One data file: a 10,000-row CSV of 400-byte rows. Loading and checking the worst
# file of this size (a JSON one that needs the slow scan below) takes ~3 s on a busy
# machine; the 8 MiB of all files together keep validate within 10 s and 500 MB.
MAX_BYTES = 4 * 2**20
# Values (rows) of one axis file: a product or locale list is hundreds; each value
# is at least one job per shot, and each job costs ~0.1 ms to expand and price.
MAX_VALUES = 10_000
# All the data files of one manifest together, however many files it names (each
# one also costs an open and a schema check).
MAX_FILES = 100
MAX_TOTAL_BYTES = 8 * 2**20
MAX_TOTAL_VALUES = 20_000


@dataclass(frozen=True, slots=True)
class AxisSource:
    """The values one ``from:`` axis loaded, each with where it was written."""

    file: str
    values: tuple[Any, ...]
    locations: tuple[Location, ...]


@dataclass(slots=True)
class _Budget:
    """What the files loaded so far have used of the manifest-wide bounds."""

    files: int = 0
    bytes: int = 0
    values: int = 0


def load_sources(
    files: Sequence[FromFile], manifest_path: Path, locate: Callable[[ManifestPath], Location]
) -> tuple[dict[ManifestPath, AxisSource], list[ManifestError]]:
    """Load every ``from:`` axis; return what loaded and every problem found."""
    loaded: dict[str, AxisSource | list[ManifestError]] = {}
    sources: dict[ManifestPath, AxisSource] = {}
    errors: list[ManifestError] = []
    budget = _Budget()
    for axis in files:
        if axis.file not in loaded:  # several shots may share one file: read it once
            loaded[axis.file] = _load_one(axis.file, manifest_path.parent, locate((*axis.path, "from")), budget)
        result = loaded[axis.file]
        if isinstance(result, AxisSource):
            sources[axis.path] = result
        elif not any(e in errors for e in result):
            errors.extend(result)
    return sources, errors


def _load_one(name: str, base: Path, where: Location, budget: _Budget) -> AxisSource | list[ManifestError]:
    try:
        file = _inside(name, base, where)
        budget.files += 1
        if budget.files > MAX_FILES:
            raise ManifestError(f"more than {MAX_FILES} data files in one manifest; merge some of them", location=where)
        text, size = _read(file, where, min(MAX_BYTES, MAX_TOTAL_BYTES - budget.bytes))
        budget.bytes += size
        shown_name = str(base / name) if str(base) != "." else name
        values, locations = _parse(file.suffix.lower(), text, shown_name)
        _count(name, values, budget, where)
    except ManifestError as error:
        return [error]
    errors = schema_check.axis_value_errors(list(values), _locator(shown_name, locations))
    if errors:
        return errors
    return AxisSource(file=shown_name, values=tuple(values), locations=tuple(locations))


def _count(name: str, values: list[Any], budget: _Budget, where: Location) -> None:
    if len(values) > MAX_VALUES:
        raise ManifestError(f"{shown(name)} holds {len(values)} values; a data file may hold at most {MAX_VALUES}",
                            location=where)
    budget.values += len(values)
    if budget.values > MAX_TOTAL_VALUES:
        raise ManifestError(f"{shown(name)} takes this manifest's data files past {MAX_TOTAL_VALUES} values; "
                            f"at most {MAX_TOTAL_VALUES} in all", location=where)


def _inside(name: str, base: Path, where: Location) -> Path:
    """Refuse paths that leave the manifest's folder, or that no file system can name."""
    if "\x00" in name:  # every OS call would raise ValueError on it
        raise ManifestError(f"{shown(name)} contains a NUL character; name a file beside the manifest", location=where)
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or "\\" in name:
        raise ManifestError(f"{shown(name)} is an absolute path; give a path relative to the manifest's folder", location=where)
    if ".." in posix.parts:
        raise ManifestError(f"{shown(name)} leaves the manifest's folder ('..'); keep data files beside the manifest", location=where)
    file = base / posix
    try:
        inside = file.resolve().is_relative_to(base.resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        raise ManifestError(f"{shown(name)} resolves outside the manifest's folder (a symlink?); keep data files beside the manifest", location=where)
    return file


def _read(file: Path, where: Location, limit: int) -> tuple[str, int]:
    """The file's text and its size in bytes."""
    name = shown(str(file))
    try:
        raw = read_regular(file, limit)
        return raw.decode("utf-8-sig"), len(raw)
    except FileRefused as refused:
        raise ManifestError(_refusal(name, refused, limit), location=where) from None
    except FileNotFoundError:
        raise ManifestError(f"file {name} not found", hint="paths are relative to the manifest's folder", location=where) from None
    except IsADirectoryError:
        raise ManifestError(f"{name} is a folder, not a file", location=where) from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{name} is not UTF-8 text (byte {exc.start})", location=where) from None
    except OSError as exc:
        raise ManifestError(f"cannot read {name}: {exc.strerror}", location=where) from None


def _refusal(name: str, refused: FileRefused, limit: int) -> str:
    """The message for a data file :func:`read_regular` refused (``name`` already quoted)."""
    if not refused.too_large:
        return f"{name} {refused.why}; a data file must be a regular file beside the manifest"
    if limit < MAX_BYTES:  # the manifest-wide bound was the one met
        return f"{name} takes this manifest's data files past {size_text(MAX_TOTAL_BYTES)}; at most {size_text(MAX_TOTAL_BYTES)} in all"
    return f"{name} is larger than {size_text(MAX_BYTES)}; a data file may be at most {size_text(MAX_BYTES)}: split or trim it"


def _parse(suffix: str, text: str, shown: str) -> tuple[list[Any], list[Location]]:
    if suffix == ".csv":
        return _parse_csv(text, shown)
    if suffix == ".json":
        values = parse_json(text, shown)
        _need_list(values, shown)
        return values, [Location(file=shown, path=f"[{i}]") for i in range(len(values))]
    return _parse_yaml(text, shown)


def _parse_csv(text: str, shown: str) -> tuple[list[Any], list[Location]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    values: list[Any] = []
    locations: list[Location] = []
    try:
        header = next(reader, None)
        _check_header(header, shown)
        for row in reader:
            if not row or row == [""]:
                continue  # blank lines are not rows
            if len(row) != len(header):  # type: ignore[arg-type]
                raise ManifestError(
                    f"row has {len(row)} fields, the header has {len(header)}",  # type: ignore[arg-type]
                    location=Location(file=shown, line=reader.line_num),
                    hint="quote values that contain commas",
                )
            values.append(dict(zip(header, row, strict=True)))  # type: ignore[arg-type]
            locations.append(Location(file=shown, line=reader.line_num))
    except csv.Error as exc:
        raise ManifestError(f"malformed CSV: {exc}", location=Location(file=shown, line=reader.line_num)) from None
    if not values:
        raise ManifestError("no rows below the header; an axis needs at least one value", location=Location(file=shown, line=1))
    return values, locations


def _check_header(header: list[str] | None, shown: str) -> None:
    where = Location(file=shown, line=1)
    if not header or header == [""]:
        raise ManifestError("empty CSV; the first row names the columns (one of them 'id')", location=where)
    seen = set()
    for name in header:
        if name in seen:
            raise ManifestError(f"column {name!r} appears twice in the header", location=where)
        seen.add(name)
    if "id" not in seen:
        raise ManifestError(f"no 'id' column (columns: {', '.join(header)}); each row needs an id", location=where)


def _parse_yaml(text: str, shown: str) -> tuple[list[Any], list[Location]]:
    try:
        values, positions = load_yaml(text)
    except YamlProblem as problem:
        raise ManifestError(problem.message, location=Location(file=shown, line=problem.line, col=problem.col)) from None
    _need_list(values, shown)
    return values, [Location(file=shown, line=p.line, col=p.col) for p in positions.items]  # type: ignore[union-attr]


def _need_list(values: Any, shown: str) -> None:
    if not isinstance(values, list) or not values:
        raise ManifestError("expected a non-empty list of matrix values", location=Location(file=shown, line=1))


def _locator(shown: str, locations: list[Location]) -> Callable[..., Location]:
    def locate(path: tuple[str | int, ...], at_key: bool = False) -> Location:
        if path and isinstance(path[0], int) and path[0] < len(locations):
            base = locations[path[0]]
            return Location(file=base.file, line=base.line, col=base.col, path=f"row {path[0] + 1}" + _rest(path[1:]))
        return Location(file=shown, line=1)
    return locate


def _rest(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
