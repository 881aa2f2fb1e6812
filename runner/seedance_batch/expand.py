"""Expand a manifest into jobs: matrix x shots, include/exclude, sandboxed Jinja.

(Skeleton: the expansion itself lands with the manifest work; the Job record is
the contract every later stage reads.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import Location

__all__ = ["Job", "request_key"]


@dataclass(frozen=True, slots=True)
class Job:
    """One concrete API request the manifest implies.

    ``request`` is the exact submit body without ``callback_url``:
    ``{"model": ..., "input": {...}}`` with unset optional fields omitted.
    ``key`` is its identity (see :func:`request_key`): same request, same job.
    ``origins`` says where each request field's value was written (``"prompt"``,
    ``"duration"``, ``"image_urls"``... -> location), so a rule violation points
    at the line to fix.
    """

    campaign: str
    shot: str
    label: str
    combination: Mapping[str, Any]
    request: Mapping[str, Any]
    key: str
    output_path: str
    location: Location
    origins: Mapping[str, Location] = field(default_factory=dict)
    private: bool = False

    @property
    def model(self) -> str:
        return str(self.request["model"])

    @property
    def input(self) -> Mapping[str, Any]:
        return self.request["input"]


def request_key(request: Mapping[str, Any]) -> str:
    """A job's identity: sha256 of the canonical JSON of its request (no callback_url)."""
    body = {k: v for k, v in request.items() if k != "callback_url"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
