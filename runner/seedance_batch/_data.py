"""Find the data files under ``schemas/``, from a checkout or an installed wheel.

The wheel carries ``schemas/`` as ``seedance_batch/schemas`` (pyproject's
force-include); a checkout or an editable install has it at the repository root.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["data_path", "schemas_dir"]

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def schemas_dir() -> Path:
    """The folder holding manifest.schema.json, models.json and friends."""
    for candidate in (_PACKAGE_DIR / "schemas", _PACKAGE_DIR.parent.parent / "schemas"):
        if (candidate / "models.json").is_file():
            return candidate
    raise FileNotFoundError(f"seedance-batch data files not found next to {_PACKAGE_DIR}; reinstall the package")


def data_path(name: str) -> Path:
    """Path of one data file, e.g. ``data_path("models.json")``."""
    return schemas_dir() / name
