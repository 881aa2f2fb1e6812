"""Load a campaign manifest: YAML with positions, JSON Schema, ``from:`` files.

:func:`load_manifest` is the edge where a manifest file becomes a frozen
:class:`Manifest` (the typed records of :mod:`.records`); every problem it
finds is a :class:`ManifestError` pointing at ``file:line:col`` and the manifest
path (``shots[1].duration``), and all independent problems are raised together. Expansion into jobs is
:func:`seedance_batch.expand.build.expand`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..errors import Location, ManifestError, ManifestErrors
from . import schema_check
from .files import FileRefused, read_regular
from .profiles import profile_errors
from .records import Manifest, build_manifest, from_files, locate
from .sources import load_sources
from .yamlsrc import Pos, YamlProblem, load_yaml

__all__ = ["MAX_BYTES", "load_manifest"]

# A real manifest is a few kB, a thousand-shot one a few hundred; long lists belong in
# ``from:`` data files. Parsing is bounded by yamlsrc.MAX_NODES; this bounds the read.
MAX_BYTES = 8 * 2**20


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
    errors += profile_errors(data, lambda p, at_key: locate(file, positions, p, at_key=at_key))
    sources, source_errors = load_sources(from_files(data), path, lambda p: locate(file, positions, p))
    ManifestErrors.raise_if_any(errors + source_errors)
    return build_manifest(path, hashlib.sha256(raw).hexdigest(), data, sources, positions)


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
