"""Matrix axes loaded from files: ``locale: {from: locales.csv}``.

A ``from:`` path is relative to the manifest's folder and must stay inside it
(no absolute paths, no ``..``, no symlink leading out). A .csv gives one mapping
per row (header row = keys, an ``id`` column required); .yaml/.yml/.json give a
list of values. Every loaded value is checked like an inline matrix value, and
remembers the line it came from.

Data files are regular files only (a FIFO would block ``validate`` forever, a
device would never end) and bounded, whatever the file system says about their
size: one file at most :data:`MAX_BYTES` and :data:`MAX_VALUES` values; all the
files of one manifest together at most :data:`MAX_FILES` files,
:data:`MAX_TOTAL_BYTES` and :data:`MAX_TOTAL_VALUES` values. JSON is held to
what YAML already is: no duplicate keys, no lone surrogates (``"\\ud800"``), no
whole numbers beyond 64 bits, finite numbers only.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ..errors import Location, ManifestError
from ..safetext import bound
from . import schema_check
from .yamlsrc import MAX_SHOWN, SURROGATE_PROBLEM, YamlProblem, bounded_int, int_problem, load_yaml, shown

__all__ = [
    "MAX_BYTES", "MAX_FILES", "MAX_TOTAL_BYTES", "MAX_TOTAL_VALUES", "MAX_VALUES", "AxisSource",
    "FileRefused", "load_sources", "read_regular",
]

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
_SUFFIXES = (".csv", ".yaml", ".yml", ".json")
_READ_CHUNK = 2**20
# A surrogate escape in JSON: a backslash run of odd length (so the last one escapes
# the 'u'; backslashes occur only inside strings) and a code from D800 to DFFF.
_SURROGATE_ESCAPE = re.compile(r"(\\+)u([dD][89a-fA-F][0-9a-fA-F]{2})")
# Only a JSON text with one of these can hold a whole number beyond 64 bits (19 digits
# or more) or a float that overflows (an exponent of 3 digits): a cheap search decides
# whether the slow scan by tokens must look.
_LONG_NUMBER = re.compile(r"[0-9]{19}|[eE][+-]?[0-9]{3}")
# What that scan stops at: strings, brackets, the numbers above and the non-finite
# constants. Short numbers, commas and literals are skipped in C, not in Python.
_NUMBER_START = r"(?<![0-9.eE+\-])-?"
_JSON_TOKEN = re.compile(
    rf'["{{}}\[\]]|{_NUMBER_START}[0-9]{{19,}}[0-9.eE+\-]*|{_NUMBER_START}[0-9][0-9.]*[eE][+\-]?[0-9]{{3,}}'
    r"|NaN|-?Infinity"
)
_JSON_SPACE = frozenset(" \t\n\r")
# The decoder's own string reader (C), so keys compare as the decoder built them.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


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


class FileRefused(Exception):
    """A file that is not a regular file (``why`` says what it is), or is larger than allowed."""

    def __init__(self, why: str, *, too_large: bool = False) -> None:
        super().__init__(why)
        self.why, self.too_large = why, too_large


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Raises :class:`FileRefused` for anything else (a FIFO, a device, a folder, a
    socket; a file larger than ``limit``, read no further than ``limit + 1`` bytes
    whatever ``st_size`` says), and ``OSError`` when it cannot be read.
    """
    _must_be_regular(os.stat(path).st_mode)  # before opening: opening a device can do things
    # O_NONBLOCK: a FIFO swapped in after the stat opens at once instead of blocking.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        _must_be_regular(os.fstat(fd).st_mode)  # what was opened, not what was looked at
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, _READ_CHUNK))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    if left <= 0:
        raise FileRefused(f"is larger than {_size(limit)}", too_large=True)
    return b"".join(chunks)


def _must_be_regular(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):  # what open() itself says of a folder, so callers word it as before
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    kind = next((word for test, word in kinds if test(mode)), "not a file")
    raise FileRefused(f"is {kind}, not a regular file")


def _size(limit: int) -> str:
    return f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit} bytes"


@dataclass(slots=True)
class _Budget:
    """What the files loaded so far have used of the manifest-wide bounds."""

    files: int = 0
    bytes: int = 0
    values: int = 0


def load_sources(
    data: Any, manifest_path: Path, locate: Callable[[tuple[str | int, ...]], Location]
) -> tuple[dict[tuple[str | int, ...], AxisSource], list[ManifestError]]:
    """Load every ``from:`` axis; return what loaded and every problem found."""
    if not isinstance(data, dict):
        return {}, []
    loaded: dict[str, AxisSource | list[ManifestError]] = {}
    sources: dict[tuple[str | int, ...], AxisSource] = {}
    errors: list[ManifestError] = []
    budget = _Budget()
    for path, spec in axis_specs(data):
        name = spec["from"]
        if name not in loaded:  # several shots may share one file: read it once
            loaded[name] = _load_one(name, manifest_path.parent, locate(path + ("from",)), budget)
        result = loaded[name]
        if isinstance(result, AxisSource):
            sources[path] = result
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
        return f"{name} takes this manifest's data files past {_size(MAX_TOTAL_BYTES)}; at most {_size(MAX_TOTAL_BYTES)} in all"
    return f"{name} is larger than {_size(MAX_BYTES)}; a data file may be at most {_size(MAX_BYTES)}: split or trim it"


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


class _Recheck(Exception):
    """A decoder hook met something to refuse; :func:`_token_problem` says what and where."""


def _not_finite(constant: str) -> float:
    raise _Recheck  # NaN, Infinity, -Infinity: as in YAML manifests, refused


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):  # json keeps the last of equal keys silently; YAML refuses them
        raise _Recheck
    return mapping


def _parse_json(text: str, shown: str) -> tuple[list[Any], list[Location]]:
    try:
        # No parse_int/parse_float hooks: a Python call per number would cost seconds.
        values = json.loads(text, parse_constant=_not_finite, object_pairs_hook=_unique)
        suspect = _LONG_NUMBER.search(text) is not None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"malformed JSON: {exc.msg}", location=Location(file=shown, line=exc.lineno, col=exc.colno)) from None
    except RecursionError:
        raise ManifestError("JSON nested too deeply", location=Location(file=shown)) from None
    except (_Recheck, ValueError):  # ValueError: a whole number past Python's 4,300 digits
        values, suspect = None, True
    found = [p for p in (_surrogate_problem(text), _token_problem(text) if suspect else None) if p is not None]
    if found or values is None:
        message, offset = min(found, key=lambda p: p[1]) if found else ("cannot be read as plain data", 0)
        line, col = _line_col(text, offset)
        raise ManifestError(message, location=Location(file=shown, line=line, col=col))
    _need_list(values, shown)
    return values, [Location(file=shown, path=f"[{i}]") for i in range(len(values))]


def _surrogate_problem(text: str) -> tuple[str, int] | None:
    """The first lone surrogate escape of a valid JSON text (a high one then a low one make one character)."""
    pair_end = -1
    for match in _SURROGATE_ESCAPE.finditer(text):
        if len(match.group(1)) % 2 == 0:  # "\\ud800" in JSON: an escaped backslash, then text
            continue
        start, code = match.end(1) - 1, int(match.group(2), 16)
        if code >= 0xDC00 and start == pair_end:  # the low half of the pair just seen
            continue
        low = _SURROGATE_ESCAPE.match(text, match.end())
        if code < 0xDC00 and low is not None and len(low.group(1)) == 1 and int(low.group(2), 16) >= 0xDC00:
            pair_end = match.end()
            continue
        return SURROGATE_PROBLEM, start
    return None


def _token_problem(text: str) -> tuple[str, int] | None:
    """The first duplicate key or unusable number of a valid JSON text, and its offset.

    A scan by tokens (keys decoded as the decoder does), run only when the fast
    decoder found something to refuse: it knows what, not where.
    """
    stack: list[dict[str, int]] = [{}]  # per open container: an object's keys and their offsets ({} for a list)
    index, end = 0, len(text)
    while (match := _JSON_TOKEN.search(text, index)) is not None:
        start = match.start()
        token = text[start]
        if token == '"':
            string, index = _scanstring(text, start + 1)
            after = index
            while after < end and text[after] in _JSON_SPACE:
                after += 1
            if after < end and text[after] == ":":  # in valid JSON, a string followed by ':' is a key
                keys = stack[-1]
                if string in keys:
                    first = _line_col(text, keys[string])[0]
                    return f"duplicate key {shown(string)} (first written on line {first}); keep one", start
                keys[string] = start
        elif token in "{[":
            stack.append({})
            index = start + 1
        elif token in "]}":
            stack.pop()
            index = start + 1
        else:
            index = match.end()
            if (problem := _number_problem(match.group())) is not None:
                return problem, start
    return None


def _number_problem(token: str) -> str | None:
    if token.lstrip("-").isdigit():
        return int_problem(token) if bounded_int(token) is None else None
    if not math.isfinite(float(token)):
        return f"{bound(token, MAX_SHOWN)} is not a finite number; give finite numbers only"
    return None


def _line_col(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


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
