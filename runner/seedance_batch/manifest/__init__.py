"""Stage 1: a manifest file becomes a checked, frozen :class:`Manifest`.

YAML with source positions (:mod:`.yamlsrc`), the JSON Schema (:mod:`.schema_check`),
the ``from:`` data files (:mod:`.sources`), put together by :mod:`.loader`.
"""

from __future__ import annotations

from .loader import MAX_BYTES, AxisSource, Manifest, ManifestPath, dotted, load_manifest

__all__ = ["MAX_BYTES", "AxisSource", "Manifest", "ManifestPath", "dotted", "load_manifest"]
