"""A runner among several on one ledger: its lease, the jobs it claims, the in-flight tasks it takes over.

Any number of runners (``seedance-batch run M --state postgresql://...`` on N machines)
render one campaign together; the ledger keeps what they share (:mod:`..ledger.claims`).
:class:`Sharing` is one runner's part, for the run (:func:`~.engine.execute` makes it
when the ledger is :attr:`~seedance_batch.ledger.api.Ledger.shared`):

- **its lease.** The runner joins with a lease of ``run.lease`` (service seconds, so
  ``--time-scale`` scales it like the rest; at least :data:`LEASE_FLOOR` real seconds)
  and renews it every quarter of that while it lives. Every claim it makes carries its
  id (:class:`~.shared_limits.ClaimTerms`). When it ends it leaves: its rows are free
  for the others at once. When it dies (kill -9) its lease runs out instead.
- **taking over.** At start, and at every renewal, it takes over the orphaned in-flight
  tasks of its plan (their runner died, left, or was an older run) and tracks them as
  its own; the orphaned ``submitting`` rows become ``unknown``, never submitted again.
  After its own submits it stays while live runners still hold jobs of its plan in
  flight, taking over from any that dies, so the campaign is rendered when it ends.
- **splitting the work.** Each runner goes through the plan in an order of its own (a
  shuffle seeded by its id), so runners rarely reach for the same job. Its submit loop
  takes each job's turn itself (:meth:`Sharing.turn_for`), then looks whether a runner
  claimed the job meanwhile, as the ledger's ``submitting`` events say (each turn's
  answer carries the ones since the last: no query of its own): such a job is skipped
  and the turn kept for the next one, so no turn is spent on a job known to be taken. Of two runners
  claiming one job at once, the ledger still gives it to one (the other is refused).
- **the budget and the account's limits** go with each claim (:mod:`.shared_limits`).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Literal

import anyio

from ..ledger import JobState, TransitionRefused
from ..ledger.aio import AsyncLedger
from ..ledger.claims import AccountBusy, ClaimTerms
from ..plan import PlannedJob
from .context import RunContext
from .shared_limits import SharedPacer
from .tracking import Tracker

__all__ = ["LEASE_FLOOR", "OVERTAKEN", "RENEWALS", "SharedTracking", "Sharing"]

# A lease is never shorter than this (real seconds), whatever the time scale: a busy machine
# must not lose a live runner's lease between two renewals.
LEASE_FLOOR = 1.0
# Renewals per lease: three may be late before the lease runs out.
RENEWALS = 4
# The states a row reaches when another runner tracking the same task got there first.
OVERTAKEN = frozenset({JobState.FINISHED, JobState.DONE, JobState.FAILED})
# After its own submits, a runner looks again every this many poll intervals whether the others' jobs ended.
SETTLE_POLLS = 2


class Sharing:
    """One runner's part in a campaign shared with others (see the module)."""

    def __init__(self, run: RunContext, tracker: Tracker, pacer: SharedPacer) -> None:
        self._run = run
        self._tracker = tracker
        settings = run.settings
        self.pacer = pacer
        # The lease's own connection and queue into the ledger: a renewal never waits behind the run's
        # other calls, nor behind a claim waiting for another runner's lock on a shared connection.
        self._companion = run.ledger.sync.companion()
        self._leases = AsyncLedger(self._companion)
        self.lease = max(LEASE_FLOOR, settings.real(settings.lease))
        self.every = self.lease / RENEWALS
        self._plans = {planned.priced.job.key: planned for planned in run.plan.jobs}
        self.runner: str | None = None
        self.taken = 0    # in-flight tasks taken over from runners that died or left
        self.lapsed = 0   # renewals that found the lease had run out (a stalled runner)
        self.waiting = 0  # jobs of the plan other live runners hold in flight
        self.skipped = 0  # jobs skipped because another runner had claimed them
        self._tracking = True  # the tracker takes jobs (a takeover is tracked)
        self._left = anyio.Event()

    @classmethod
    def for_run(cls, run: RunContext, tracker: Tracker) -> Sharing:
        """This runner's part, its submits on the account's schedule in the ledger (:mod:`.shared_limits`)."""
        settings = run.settings
        pacer = SharedPacer(run.ledger, settings.submits_per_minute / settings.time_scale,
                            window=settings.real(settings.rate_window))
        return cls(run, tracker, pacer)

    def terms(self, max_usd: Decimal | None) -> ClaimTerms:
        """What the next claim carries: this runner, the campaign's budget (``max_usd``), the in-flight limit,
        the schedule's interval and the newest claim seen."""
        assert self.runner is not None, "joined first"
        return self.pacer.terms(self.runner, max_usd, self._run.settings.max_in_flight)

    # --- the lease ------------------------------------------------------------------------------

    async def join(self) -> list[PlannedJob]:
        """Join the campaign; the in-flight jobs of the plan no live runner holds, now this runner's to track."""
        run = self._run
        self.runner = await run.ledger.join(run.campaign, self.lease)
        self.pacer.cursor = await run.ledger.last_event_id(run.campaign)
        # What the others claimed since the plan read the ledger (later claims: each turn's answer says).
        planned = {p.priced.job.key: p.record.state if p.record else None for p in run.plan.to_submit}
        self.pacer.claimed.update(rec.key for rec in await run.ledger.records(run.campaign)
                                  if rec.key in planned and rec.state is not planned[rec.key])
        return await self._take_over()

    async def run(self) -> None:
        """Renew the lease every quarter of it until :meth:`leave` (downloads after the tracking included),
        and take over what dead runners left while the tracker takes jobs."""
        assert self.runner is not None
        while not self._left.is_set():
            with anyio.move_on_after(self.every):
                await self._left.wait()
            if self._left.is_set():
                return
            if not await self._leases.renew(self.runner, self.lease):
                self.lapsed += 1  # stalled past its lease: another runner may have taken its tasks over
                self._run.progress.note(f"this runner's lease ran out ({self.lease:g} s without a renewal): "
                                        "other runners may track its tasks too")
            if self._tracking:
                await self.track_orphans()

    def tracking_over(self) -> None:
        """The tracker has ended: no more takeovers (the lease is renewed until :meth:`leave`)."""
        self._tracking = False

    async def leave(self) -> None:
        """Give the lease back: this runner's rows are free for the others at once; :meth:`run` returns."""
        self._left.set()
        if self.runner is not None:
            with anyio.CancelScope(shield=True):
                await self._run.ledger.leave(self.runner)
        if self._companion is not self._run.ledger.sync:
            self._companion.close()

    async def track_orphans(self) -> None:
        """Take over the orphaned in-flight jobs of the plan and track them."""
        for planned in await self._take_over():
            await self._tracker.resume(planned)

    async def until_settled(self) -> None:
        """After this runner's submits: stay while live runners hold jobs of the plan in flight (taking
        over from any that dies), unless the run was interrupted."""
        run = self._run
        # Looked at every few poll intervals: the others' last tasks end about as this runner's do.
        gap = min(self.every, run.settings.real(SETTLE_POLLS * run.settings.poll_interval))
        if run.stops.interrupted or not self._tracking:
            return
        # Counted afresh first: the last renewal's count misses what the others claimed since (a runner
        # that left on it ended before their jobs did, read them not done, and exited 1).
        await self.track_orphans()
        while self.waiting and not run.stops.interrupted and self._tracking:
            await anyio.sleep(gap)
            await self.track_orphans()

    async def _take_over(self) -> list[PlannedJob]:
        run = self._run
        assert self.runner is not None
        # On the lease's own queue too: a deep queue of the run's writes must not hold up the next renewal.
        taken = await self._leases.take_over(run.campaign, self.runner, list(self._plans))
        self.waiting = taken.waiting
        for rec in taken.unknown:
            run.progress.job(rec.label, "unknown", "its runner stopped during its submit; not resubmitted "
                                                   "(--resubmit-unknown)")
        found = [replace(self._plans[rec.key], record=rec) for rec in taken.tracked if rec.key in self._plans]
        self.taken += len(found)
        return found

    # --- splitting the work ---------------------------------------------------------------------

    def order(self, jobs: Sequence[PlannedJob]) -> list[PlannedJob]:
        """The plan's jobs in this runner's own order (a shuffle seeded by its id)."""
        shuffled = list(jobs)
        random.Random(self.runner).shuffle(shuffled)
        return shuffled

    async def claim(self, planned: PlannedJob, resubmit: tuple[JobState, ...],
                    max_usd: Decimal | None) -> Literal["claimed", "taken", "stopped"]:
        """Claim the job with this runner's terms, then wait for the submit turn the claim took: "claimed"
        (send it now), "taken" (another runner claimed it since the submit loop looked) or "stopped" (the
        run stopped submitting: nothing is sent, the row is released). While every runner's jobs in flight
        fill the account's limit, wait and claim again. :class:`~..ledger.claims.OverBudget` and
        :class:`~..ledger.transitions.TransitionRefused` are the caller's."""
        run, job, cost = self._run, planned.priced.job, planned.priced.cost
        async with self.pacer.one_at_a_time:  # one claimed job waiting for its turn per runner, no more
            if self.claimed_elsewhere(planned):
                return "taken"
            while True:
                try:
                    made = await run.ledger.claim(campaign=run.campaign, key=job.key, label=job.label, shot=job.shot,
                                                  request=job.request, credits=cost.credits, cost_usd=cost.usd,
                                                  output_path=job.output_path, resubmit=resubmit,
                                                  terms=self.terms(max_usd))
                    break
                except AccountBusy:
                    await anyio.sleep(run.settings.real(run.settings.poll_interval))
                    if not run.stops.submitting:
                        return "stopped"
            await self.pacer.wait_turn(made)
        if not run.stops.submitting:
            with anyio.CancelScope(shield=True):
                await run.ledger.release(run.campaign, job.key, "not_sent", "the run stopped before this submit")
            return "stopped"
        return "claimed"

    def claimed_elsewhere(self, planned: PlannedJob) -> bool:
        """Whether a runner has claimed the job since the plan was made (as the claims' answers said)."""
        if self.pacer.claimed_now(planned.priced.job.key):
            self.skipped += 1
            return True
        return False


class SharedTracking(AsyncLedger):
    """The run's ledger on a shared ledger: a tracking write another runner has overtaken is not an error.

    Two runners may follow one task for a while: one whose lease ran out while it lived (a
    stalled machine) goes on tracking what another has taken over. Whichever records the
    task's end first wins; the other's write finds the row moved past it, and a refusal
    there (the row already done, failed, or finished elsewhere) is read as a repeat
    (False), with a note in the audit trail, instead of ending the run. Every other
    refusal is raised as before.
    """

    async def status_seen(self, campaign: str, key: str, api_status: str) -> bool:
        return await self._overtaken(super().status_seen(campaign, key, api_status), campaign, key, "status_seen")

    async def finished(self, campaign: str, key: str, file_url: str | None, *, source: str = "status") -> bool:
        return await self._overtaken(super().finished(campaign, key, file_url, source=source), campaign, key,
                                     "finished")

    async def failed(self, campaign: str, key: str, error_class: str, message: str,
                     api_status: str | None = None) -> bool:
        return await self._overtaken(super().failed(campaign, key, error_class, message, api_status), campaign,
                                     key, "failed")

    async def timed_out(self, campaign: str, key: str, message: str) -> bool:
        return await self._overtaken(super().timed_out(campaign, key, message), campaign, key, "timed_out")

    async def downloaded(self, campaign: str, key: str, output_path: str, size: int, sha256: str) -> bool:
        return await self._overtaken(super().downloaded(campaign, key, output_path, size, sha256), campaign, key,
                                     "downloaded")

    async def _overtaken(self, write: Awaitable[bool], campaign: str, key: str, operation: str) -> bool:
        try:
            return await write
        except TransitionRefused as refused:
            if refused.state not in OVERTAKEN:
                raise
            await self.note(campaign, key, "overtaken", {"operation": operation, "state": refused.state.value})
            return False
