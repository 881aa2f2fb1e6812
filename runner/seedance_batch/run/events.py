"""Webhook events, picked up from the ledger: a cursor over its events table, read cheaply.

Whoever receives a callback (the run's own receiver, or ``seedance-batch receive`` on
another machine of a shared ledger, or this one) writes it into the ledger first. The run
reads them back here: :class:`EventFeed` keeps the id of the last event it read and asks
for the campaign's ``webhook`` events after it (one index range), every :data:`READ_EVERY`
service seconds, so an event stored by a receiver elsewhere reaches the run within that.
The run's own receiver also wakes the tracker at once (:func:`wake_from_receiver`), once
the event is stored: the feed then reads a duplicate, which changes nothing.

Each terminal event (``finished``, ``failed``, or the ``completed`` alias) wakes the
tracker of its task, which then asks the status endpoint: events are hints, never
trusted on their own. Other words (a stale ``running``) wake nothing. Events for a
task the run does not follow (ended, or another run's) cost nothing but the read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import anyio.from_thread
import anyio.lowlevel

from ..ledger.aio import AsyncLedger

if TYPE_CHECKING:
    from ..webhooks import WebhookEvent

__all__ = ["READ_EVERY", "TERMINAL_WORDS", "EventFeed", "wake_from_receiver"]

# Service seconds between two reads when nothing pokes the feed: well within the 1 s of
# detection delay a callback may add (and a read is one indexed query).
READ_EVERY = 0.5
# Never read more often than this, in real seconds, whatever the time scale.
MIN_REAL_GAP = 0.02
# Events read at once; more wait for the next read (which follows at once).
PAGE = 500
# The words a callback carries when a task ends ("completed": APIDot's web UI's alias).
TERMINAL_WORDS = frozenset({"finished", "failed", "completed"})


class EventFeed:
    """The campaign's webhook events after a cursor; each terminal one calls ``wake(task_id)``."""

    def __init__(self, ledger: AsyncLedger, campaign: str, wake: Callable[[str], None], *,
                 time_scale: float = 1.0) -> None:
        self._ledger = ledger
        self._campaign = campaign
        self._wake = wake
        self._gap = max(MIN_REAL_GAP, READ_EVERY * time_scale)
        self._stopping = anyio.Event()
        self._stopped = False
        self.cursor = 0
        self.read = 0  # events read
        self.woken = 0  # terminal events that woke a tracker

    async def start(self) -> None:
        """Start after the newest event: older ones are an earlier run's (its jobs are polled at once anyway)."""
        self.cursor = await self._ledger.last_event_id(self._campaign)

    def stop(self) -> None:
        """No more reads: :meth:`run` returns."""
        self._stopped = True
        self._stopping.set()

    async def run(self) -> None:
        """Read until :meth:`stop`, every ``READ_EVERY``."""
        while not self._stopped:
            self._stopping = anyio.Event()
            while await self.read_once() == PAGE:
                pass
            with anyio.move_on_after(self._gap):
                await self._stopping.wait()

    async def read_once(self) -> int:
        """Read what arrived after the cursor and wake the trackers concerned; how many were read."""
        events = await self._ledger.events_after(self._campaign, self.cursor, ("webhook",), PAGE)
        for event in events:
            self.cursor = max(self.cursor, event.id)
            if event.task_id is not None and event.detail.get("status") in TERMINAL_WORDS:
                self.woken += 1
                self._wake(event.task_id)
        self.read += len(events)
        return len(events)


def wake_from_receiver(wake: Callable[[str], None],
                       token: anyio.lowlevel.EventLoopToken) -> Callable[[WebhookEvent], None]:
    """What the run's own receiver calls (on its thread) once it has stored an event: a terminal
    one wakes its task's tracker on the run's loop (``token``) now, without waiting for the
    feed's next read. The feed reads it from the ledger anyway: that duplicate changes nothing."""

    def heard(event: WebhookEvent) -> None:
        if event.status in TERMINAL_WORDS:
            anyio.from_thread.run_sync(wake, event.task_id, token=token)

    return heard
