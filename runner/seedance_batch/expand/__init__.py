"""Stage 2: a manifest becomes jobs, exactly the API requests it implies (pure).

The parameter table (:mod:`.params`), the matrix (:mod:`.matrix`, :mod:`.space`),
each shot prepared once (:mod:`.shots`, checked by :mod:`.checks` and
:mod:`.limits`), the sandboxed templates (:mod:`.templating`), the jobs themselves
(:mod:`.build`), their file names (:mod:`.paths`) and clashes (:mod:`.clashes`).

The names below are loaded on first use: the parameter table is read by the
manifest loader and the model rules, which must not pay for Jinja's import (nor
import the loader back) to read it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .build import MAX_EXPANDED_BYTES, Job, expand, expand_profiles, request_key
    from .paths import safe_output_path

__all__ = ["MAX_EXPANDED_BYTES", "Job", "expand", "expand_profiles", "request_key", "safe_output_path"]

_HOMES = {"MAX_EXPANDED_BYTES": ".build", "Job": ".build", "expand": ".build", "expand_profiles": ".build",
          "request_key": ".build",
          "safe_output_path": ".paths"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value  # found once: later reads are plain attribute reads
    return value
