"""The ledger's transitions as named operations, written once for every backend.

Each operation is one guarded move of :data:`~.transitions.TRANSITIONS` (which states it
may start from, which it reaches, what it records): a backend supplies ``_move``, the one
statement that applies a transition, and inherits these. So both backends answer every
operation with the same fields, by construction rather than by keeping two copies alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..times import now_iso

__all__ = ["Moves"]


class Moves:
    """Mixin: the job-state operations of :class:`~.api.Ledger` over a backend's ``_move``."""

    # (operation, campaign, key, *, value=None, detail=None, **fields) -> False for a repeat;
    # TransitionRefused when the row may not make that move.
    _move: Callable[..., bool]

    def release(self, campaign: str, key: str, error_class: str, message: str) -> bool:
        """Back to ``pending``: the service answered without a task (429, 5xx) or nothing was sent."""
        return self._move("release", campaign, key, error_class=error_class, error_message=message)

    def unknown(self, campaign: str, key: str, message: str) -> bool:
        """The submit was sent and no answer came: the task may exist."""
        return self._move("unknown", campaign, key, error_class="ambiguous_submit", error_message=message)

    def failed(self, campaign: str, key: str, error_class: str, message: str, api_status: str | None = None) -> bool:
        """The service said failed, rejected the request, or attempts ran out."""
        fields: dict[str, Any] = {"error_class": error_class, "error_message": message}
        if api_status is not None:
            fields["api_status"] = api_status
        return self._move("failed", campaign, key, **fields)

    def status_seen(self, campaign: str, key: str, api_status: str) -> bool:
        """A status answer that changes nothing but the service's word for it (``running``...)."""
        return self._move("status_seen", campaign, key, value=api_status, api_status=api_status)

    def finished(self, campaign: str, key: str, file_url: str | None, *, source: str = "status") -> bool:
        """The service says finished; record the file URL (downloaded next)."""
        return self._move("finished", campaign, key, detail={"source": source}, api_status="finished",
                          file_url=file_url, finished_at=now_iso())

    def downloaded(self, campaign: str, key: str, output_path: str, size: int, sha256: str) -> bool:
        """The video is on disk under its final name, size and sha256 verified."""
        return self._move("downloaded", campaign, key, detail={"size": size}, output_path=output_path, size=size,
                          sha256=sha256, downloaded_at=now_iso())

    def timed_out(self, campaign: str, key: str, message: str) -> bool:
        """run.timeout passed while tracking; the task id stays for a later run."""
        return self._move("timed_out", campaign, key, error_class="timeout", error_message=message)
