"""Matrix axes loaded from files: ``locale: {from: locales.csv}``.

A ``from:`` path is relative to the manifest's folder and must stay inside it
(no absolute paths, no ``..``, no symlink leading out). A .csv gives one mapping
per row (header row = keys, an ``id`` column required); .yaml/.yml/.json give a
list of values. Every loaded value is checked like an inline matrix value, and
remembers the line it came from.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from . import schema_check
from .errors import Location, ManifestError
from .yamlsrc import YamlProblem, load_yaml

__all__ = ["AxisSource", "load_sources"]

MAX_BYTES = 64 * 1024 * 1024
_SUFFIXES = (".csv", ".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class AxisSource:
    """The values one ``from:`` axis loaded, each with where it was written."""

    file: str
    values: tuple[Any, ...]
    locations: tuple[Location, ...]


def axis_specs(data: Any) -> list[tuple[tuple[str | int, ...], Any]]:
    """Every ``(axis path, spec)`` of the manifest's matrices whose spec is ``{from: ...}``."""
    found = []
    matrices: list[tuple[tuple[str | int, ...], Any]] = [(("matrix",), data.get("matrix"))]
    shots = data.get("shots")
    if isinstance(shots, list):
        matrices += [(("shots", i, "matrix"), s.get("matrix")) for i, s in enumerate(shots) if isinstance(s, dict)]
    for base, matrix in matrices:
        if not isinstance(matrix, dict):
            continue
        for axis, spec in matrix.items():
            name = spec.get("from") if isinstance(spec, dict) else None
            # A name the schema refuses (not .csv/.yaml/.yml/.json) is reported once, by the schema.
            if isinstance(name, str) and name.endswith(_SUFFIXES) and axis not in ("include", "exclude"):
                found.append((base + (axis,), spec))
    return found


def load_sources(
    data: Any, manifest_path: Path, locate: Callable[[tuple[str | int, ...]], Location]
) -> tuple[dict[tuple[str | int, ...], AxisSource], list[ManifestError]]:
    """Load every ``from:`` axis; return what loaded and every problem found."""
    if not isinstance(data, dict):
        return {}, []
    loaded: dict[str, AxisSource | list[ManifestError]] = {}
    sources: dict[tuple[str | int, ...], AxisSource] = {}
    errors: list[ManifestError] = []
    for path, spec in axis_specs(data):
        name = spec["from"]
        if name not in loaded:  # several shots may share one file: read it once
            loaded[name] = _load_one(name, manifest_path.parent, locate(path + ("from",)))
        result = loaded[name]
        if isinstance(result, AxisSource):
            sources[path] = result
        elif not any(e in errors for e in result):
            errors.extend(result)
    return sources, errors


def _load_one(name: str, base: Path, where: Location) -> AxisSource | list[ManifestError]:
    try:
        file = _inside(name, base, where)
        text = _read(file, where)
        shown = str(base / name) if str(base) != "." else name
        values, locations = _parse(file.suffix.lower(), text, shown)
    except ManifestError as error:
        return [error]
    errors = schema_check.axis_value_errors(list(values), _locator(shown, locations))
    if errors:
        return errors
    return AxisSource(file=shown, values=tuple(values), locations=tuple(locations))


def _inside(name: str, base: Path, where: Location) -> Path:
    """Refuse paths that leave the manifest's folder."""
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or "\\" in name:
        raise ManifestError(f"{name!r} is an absolute path; give a path relative to the manifest's folder", location=where)
    if ".." in posix.parts:
        raise ManifestError(f"{name!r} leaves the manifest's folder ('..'); keep data files beside the manifest", location=where)
    file = base / posix
    try:
        inside = file.resolve().is_relative_to(base.resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        raise ManifestError(f"{name!r} resolves outside the manifest's folder (a symlink?); keep data files beside the manifest", location=where)
    return file


def _read(file: Path, where: Location) -> str:
    try:
        if file.stat().st_size > MAX_BYTES:
            raise ManifestError(f"{file.name!r} is larger than {MAX_BYTES // 2**20} MiB", location=where)
        return file.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(f"file {str(file)!r} not found", hint="paths are relative to the manifest's folder", location=where) from None
    except IsADirectoryError:
        raise ManifestError(f"{str(file)!r} is a folder, not a file", location=where) from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{str(file)!r} is not UTF-8 text (byte {exc.start})", location=where) from None
    except OSError as exc:
        raise ManifestError(f"cannot read {str(file)!r}: {exc.strerror}", location=where) from None


def _parse(suffix: str, text: str, shown: str) -> tuple[list[Any], list[Location]]:
    if suffix == ".csv":
        return _parse_csv(text, shown)
    if suffix == ".json":
        return _parse_json(text, shown)
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
            values.append(dict(zip(header, row)))  # type: ignore[arg-type]
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


def _parse_json(text: str, shown: str) -> tuple[list[Any], list[Location]]:
    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):  # as in YAML manifests: NaN and infinities are refused
            raise ManifestError(f"{number} is not a finite number; give finite numbers only", location=Location(file=shown))
        return value

    try:
        values = json.loads(text, parse_float=finite, parse_constant=finite)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"malformed JSON: {exc.msg}", location=Location(file=shown, line=exc.lineno, col=exc.colno)) from None
    except RecursionError:
        raise ManifestError("JSON nested too deeply", location=Location(file=shown)) from None
    _need_list(values, shown)
    return values, [Location(file=shown, path=f"[{i}]") for i in range(len(values))]


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
