"""Load a campaign manifest: YAML with positions, JSON Schema, ``from:`` files.

:func:`load_manifest` is the edge where a manifest file becomes a frozen
:class:`Manifest`; every problem it finds is a :class:`ManifestError` pointing at
``file:line:col`` and the manifest path (``shots[1].duration``), and all
independent problems are raised together. Expansion into jobs is
:func:`seedance_batch.expand.build.expand`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import Location, ManifestError, ManifestErrors
from . import schema_check
from .sources import AxisSource, FileRefused, load_sources, read_regular
from .yamlsrc import Pos, YamlProblem, load_yaml

__all__ = ["MAX_BYTES", "AxisSource", "Manifest", "ManifestPath", "dotted", "load_manifest"]

# A real manifest is a few kB, a thousand-shot one a few hundred; long lists belong in
# ``from:`` data files. Parsing is bounded by yamlsrc.MAX_NODES; this bounds the read.
MAX_BYTES = 8 * 2**20

ManifestPath = tuple["str | int", ...]


@dataclass(frozen=True, slots=True)
class Manifest:
    """A loaded, schema-valid manifest.

    ``data`` is the plain mapping as written (``{from: file}`` axes included);
    ``sources`` holds what each ``from:`` axis loaded, by the axis's manifest path
    (``("matrix", "locale")`` or ``("shots", 2, "matrix", "locale")``).
    """

    path: Path
    name: str
    description: str | None
    sha256: str
    budget_usd: Decimal | None
    run: Mapping[str, Any]
    output_dir: str
    output_filename: str | None
    private: bool
    data: Mapping[str, Any]
    sources: Mapping[ManifestPath, AxisSource] = field(default_factory=dict)
    positions: Pos | None = field(default=None, repr=False, compare=False)

    @property
    def file(self) -> str:
        """The manifest's file name as the user gave it (used in error lines)."""
        return str(self.path)

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


def load_manifest(path: str | Path) -> Manifest:
    """Read, parse and validate a manifest; load its ``from:`` files.

    Raises :class:`ManifestError` (one problem) or :class:`ManifestErrors` (several).
    """
    path = Path(path)
    raw = _read(path)
    file = str(path)
    try:
        data, positions = load_yaml(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ManifestError(f"not UTF-8 text (byte {exc.start})", location=Location(file=file)) from None
    except YamlProblem as problem:
        raise ManifestError(problem.message, location=Location(file=file, line=problem.line, col=problem.col)) from None
    errors = schema_check.manifest_errors(data, lambda p, at_key=False: locate(file, positions, p, at_key=at_key))
    errors += _duplicate_shot_ids(data, file, positions)
    sources, source_errors = load_sources(data, path, lambda p: locate(file, positions, p))
    ManifestErrors.raise_if_any(errors + source_errors)
    return _manifest(path, raw, data, sources, positions)


def _read(path: Path) -> bytes:
    """The manifest's bytes: a regular file of at most MAX_BYTES (a FIFO or a device is refused, not read)."""
    where = Location(file=str(path))
    try:
        return read_regular(path, MAX_BYTES)
    except FileRefused as refused:
        if refused.too_large:
            raise ManifestError(f"manifest is larger than {MAX_BYTES // 2**20} MiB; a manifest may be at most "
                                f"{MAX_BYTES // 2**20} MiB (long lists go in from: data files)", location=where) from None
        raise ManifestError(f"{refused.why}; give the manifest's .yaml file", location=where) from None
    except FileNotFoundError:
        raise ManifestError("manifest not found", location=where) from None
    except IsADirectoryError:
        raise ManifestError("is a folder; give the manifest's .yaml file", location=where) from None
    except OSError as exc:
        raise ManifestError(f"cannot read the manifest: {exc.strerror}", location=where) from None


def _duplicate_shot_ids(data: Any, file: str, positions: Pos | None) -> list[ManifestError]:
    shots = data.get("shots") if isinstance(data, dict) else None
    if not isinstance(shots, list):
        return []
    first: dict[str, int] = {}
    errors = []
    for index, shot in enumerate(shots):
        shot_id = shot.get("id") if isinstance(shot, dict) else None
        if not isinstance(shot_id, str):
            continue
        if shot_id in first:
            where = locate(file, positions, ("shots", index, "id"))
            line = locate(file, positions, ("shots", first[shot_id], "id")).line
            errors.append(ManifestError(
                f"duplicate shot id {shot_id!r} (also shots[{first[shot_id]}], line {line}); shot ids must be unique",
                location=where,
            ))
        else:
            first[shot_id] = index
    return errors


def _manifest(path: Path, raw: bytes, data: dict[str, Any], sources: Mapping[ManifestPath, AxisSource], positions: Pos | None) -> Manifest:
    budget = data.get("budget", {}).get("max_usd")
    output = data.get("output", {})
    return Manifest(
        path=path,
        name=data["name"],
        description=data.get("description"),
        sha256=hashlib.sha256(raw).hexdigest(),
        budget_usd=Decimal(str(budget)) if budget is not None else None,
        run=data.get("run", {}),
        output_dir=output.get("dir", "renders"),
        output_filename=output.get("filename"),
        private=bool(data.get("private", False)),
        data=data,
        sources=sources,
        positions=positions,
    )
