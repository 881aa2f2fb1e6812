"""What every part of a run shares: the plan, the settings, the client, the ledger, the user's view.

One :class:`RunContext` per run, made by :func:`~.engine.execute`; the submit loop
(:mod:`.engine`), the tracker (:mod:`.tracking`) and the downloads (:mod:`.downloads`)
each take it instead of six arguments apiece.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from ..ledger.aio import AsyncLedger
from ..plan import Plan
from .client import ApiClient
from .progress import Progress
from .settings import RunSettings
from .stops import Stops

__all__ = ["RunContext"]


@dataclass(frozen=True, slots=True)
class RunContext:
    """One run's shared parts. ``slots``: one per job in flight (``max_in_flight``)."""

    plan: Plan
    settings: RunSettings
    client: ApiClient
    ledger: AsyncLedger  # every ledger call of the run goes through it: off the event loop
    progress: Progress
    stops: Stops
    slots: anyio.Semaphore

    @property
    def campaign(self) -> str:
        return self.plan.campaign
