"""Stage 5: a plan is rendered: rate-limited submits, tracking, downloads, through the ledger.

:func:`execute` (:mod:`.engine`) with its parts beside it: the API client, the pacer,
the poll schedule, the tracker, downloads, progress, and the run's settings.
"""

from __future__ import annotations

from .engine import execute
from .settings import RunResult, RunSettings

__all__ = ["RunResult", "RunSettings", "execute"]
