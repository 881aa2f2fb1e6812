"""Stage 2: a manifest becomes jobs, exactly the API requests it implies (pure).

The matrix (:mod:`.matrix`), what each shot shares (:mod:`.shots`), the sandboxed
templates (:mod:`.templating`), and the jobs themselves (:mod:`.build`).
"""

from __future__ import annotations

from .build import MAX_EXPANDED_BYTES, Job, expand, request_key, safe_output_path

__all__ = ["MAX_EXPANDED_BYTES", "Job", "expand", "request_key", "safe_output_path"]
