"""Stage 1: a manifest file becomes a checked, frozen :class:`Manifest` of typed records.

YAML with source positions (:mod:`.yamlsrc`), the JSON Schema (:mod:`.schema_check`),
the ``from:`` data files (:mod:`.sources`, :mod:`.files`, :mod:`.jsondata`), the
records (:mod:`.records`), put together by :mod:`.loader`.
"""

from __future__ import annotations

from .loader import MAX_BYTES, load_manifest
from .records import (
    Budget,
    Manifest,
    ManifestPath,
    Matrix,
    MatrixAxis,
    MatrixEntry,
    Output,
    Params,
    Shot,
    dotted,
)
from .sources import AxisSource

__all__ = [
    "MAX_BYTES", "AxisSource", "Budget", "Manifest", "ManifestPath", "Matrix", "MatrixAxis", "MatrixEntry", "Output",
    "Params", "Shot", "dotted", "load_manifest",
]
