"""seedance-batch: declarative batch rendering for Seedance 2 through APIDot."""

from __future__ import annotations

__version__ = "0.1.0"
