"""The ledger from async code: every call in a worker thread, never on the event loop.

A networked backend may take milliseconds (or, while a connection is re-established,
seconds) per call; run on the event loop, that would stall every submit, poll and
download of the run. :class:`AsyncLedger` wraps any :class:`~.api.Ledger` and runs
each call through :func:`anyio.to_thread.run_sync` on one worker at a time (the
calls of a run keep their order, as they did on one thread).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from .api import Ledger
from .claims import Claim, ClaimTerms, TakenOver
from .decisions import Decision, DecisionChange
from .mediacache import CachedMedia
from .records import Event, JobRecord, JobState

__all__ = ["AsyncLedger"]

T = TypeVar("T")


class AsyncLedger:
    """Awaitable versions of the ledger's operations (the same guarantees, the same
    errors: see :mod:`.api`); :attr:`sync` is the ledger itself."""

    def __init__(self, ledger: Ledger) -> None:
        # Imported here: plan and validate load the ledger package, never the run stack.
        import anyio
        import anyio.to_thread

        self.sync = ledger
        # One call at a time: the backend's transactions stay in the order the run made them.
        self._limiter = anyio.CapacityLimiter(1)
        self._run_sync = anyio.to_thread.run_sync

    async def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._run_sync(partial(method, *args, **kwargs), limiter=self._limiter)

    async def record(self, campaign: str, key: str) -> JobRecord | None:
        return await self._call(self.sync.record, campaign, key)

    async def records(self, campaign: str) -> list[JobRecord]:
        return await self._call(self.sync.records, campaign)

    async def by_task_id(self, task_id: str) -> JobRecord | None:
        return await self._call(self.sync.by_task_id, task_id)

    async def events(self, campaign: str) -> list[Event]:
        return await self._call(self.sync.events, campaign)

    async def recover(self) -> list[JobRecord]:
        return await self._call(self.sync.recover)

    async def begin_submit(self, *, campaign: str, key: str, label: str, shot: str, request: Mapping[str, Any],
                           credits: int, cost_usd: Decimal, output_path: str | None,
                           resubmit: Collection[JobState] = ()) -> JobRecord:
        return await self._call(self.sync.begin_submit, campaign=campaign, key=key, label=label, shot=shot,
                                request=request, credits=credits, cost_usd=cost_usd, output_path=output_path,
                                resubmit=resubmit)

    async def claim(self, *, campaign: str, key: str, label: str, shot: str, request: Mapping[str, Any],
                    credits: int, cost_usd: Decimal, output_path: str | None, terms: ClaimTerms,
                    resubmit: Collection[JobState] = ()) -> Claim:
        return await self._call(self.sync.claim, campaign=campaign, key=key, label=label, shot=shot,
                                request=request, credits=credits, cost_usd=cost_usd, output_path=output_path,
                                terms=terms, resubmit=resubmit)

    # --- many runners (see .claims) -----------------------------------------------------------

    async def join(self, campaign: str, lease: float) -> str:
        return await self._call(self.sync.join, campaign, lease)

    async def renew(self, runner: str, lease: float) -> bool:
        return await self._call(self.sync.renew, runner, lease)

    async def leave(self, runner: str) -> None:
        await self._call(self.sync.leave, runner)

    async def take_over(self, campaign: str, runner: str, keys: Collection[str]) -> TakenOver:
        return await self._call(self.sync.take_over, campaign, runner, keys)

    async def delay_turns(self, pause: float) -> None:
        await self._call(self.sync.delay_turns, pause)

    async def submitted(self, campaign: str, key: str, task_id: str, api_status: str | None) -> bool:
        return await self._call(self.sync.submitted, campaign, key, task_id, api_status)

    async def release(self, campaign: str, key: str, error_class: str, message: str) -> bool:
        return await self._call(self.sync.release, campaign, key, error_class, message)

    async def unknown(self, campaign: str, key: str, message: str) -> bool:
        return await self._call(self.sync.unknown, campaign, key, message)

    async def failed(self, campaign: str, key: str, error_class: str, message: str,
                     api_status: str | None = None) -> bool:
        return await self._call(self.sync.failed, campaign, key, error_class, message, api_status)

    async def status_seen(self, campaign: str, key: str, api_status: str) -> bool:
        return await self._call(self.sync.status_seen, campaign, key, api_status)

    async def finished(self, campaign: str, key: str, file_url: str | None, *, source: str = "status") -> bool:
        return await self._call(self.sync.finished, campaign, key, file_url, source=source)

    async def downloaded(self, campaign: str, key: str, output_path: str, size: int, sha256: str) -> bool:
        return await self._call(self.sync.downloaded, campaign, key, output_path, size, sha256)

    async def timed_out(self, campaign: str, key: str, message: str) -> bool:
        return await self._call(self.sync.timed_out, campaign, key, message)

    async def note(self, campaign: str, key: str, kind: str, detail: Mapping[str, Any] | None = None) -> None:
        await self._call(self.sync.note, campaign, key, kind, detail)

    async def refunded(self, campaign: str, key: str, task_id: str, credits: int, *, source: str = "status") -> bool:
        return await self._call(self.sync.refunded, campaign, key, task_id, credits, source=source)

    async def events_after(self, campaign: str, after: int, kinds: Collection[str], limit: int = 1000) -> list[Event]:
        return await self._call(self.sync.events_after, campaign, after, kinds, limit)

    async def last_event_id(self, campaign: str) -> int:
        return await self._call(self.sync.last_event_id, campaign)

    async def add_callback_token(self, campaign: str, digest: str) -> None:
        await self._call(self.sync.add_callback_token, campaign, digest)

    async def revoke_callback_token(self, digest: str) -> None:
        await self._call(self.sync.revoke_callback_token, digest)

    async def callback_tokens(self) -> dict[str, str]:
        return await self._call(self.sync.callback_tokens)

    async def media_checks(self, url_hashes: Collection[str]) -> dict[str, CachedMedia]:
        return await self._call(self.sync.media_checks, url_hashes)

    async def save_media_checks(self, entries: Collection[CachedMedia]) -> None:
        await self._call(self.sync.save_media_checks, entries)

    async def decide(self, campaign: str, key: str, change: DecisionChange, *, label: str, combination: str,
                     reviewer: str) -> list[Decision]:
        return await self._call(self.sync.decide, campaign, key, change, label=label, combination=combination,
                                reviewer=reviewer)

    async def decisions(self, campaign: str) -> list[Decision]:
        return await self._call(self.sync.decisions, campaign)

    async def decision_history(self, campaign: str) -> list[Decision]:
        return await self._call(self.sync.decision_history, campaign)
