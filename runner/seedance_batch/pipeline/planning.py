"""The stages up to the plan, with the ledger read as it stands: for every command, and for the ones that only look."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..ledger import Decision, JobRecord, Ledger, ledger_location, open_ledger, shown_location
from ..manifest import Manifest, load_manifest
from ..models import load_catalog
from ..plan import Plan, make_plan
from ..selection import Selection

if TYPE_CHECKING:  # the run's stack (httpx, anyio, starlette) is imported only by run_manifest
    from ..media import MediaReport

__all__ = ["LedgerView", "check_plan_media", "load_plan", "view_campaign"]


def load_plan(
    manifest_path: Path,
    ledger: Ledger | None,
    *,
    prices: str | Path | None = None,
    max_usd: Decimal | None = None,
    retry_failed: bool = False,
    resubmit_unknown: bool = False,
    only: Sequence[str] = (),
    profile: str | None = None,
    approved: bool = False,
) -> tuple[Manifest, Plan]:
    """Load, expand, check and price a manifest, then plan it against the ledger.

    ``ledger`` None means there is none yet (a dry run creates no files);
    ``max_usd`` overrides the manifest's ``budget.max_usd``; ``only`` (``--only``
    patterns) plans just the jobs they select; ``profile`` (``--profile``) the profile
    planned (None: the manifest's ``profile:``), ``approved`` (``--approved``) its
    approved takes only (see :mod:`.promotion`).
    """
    from ..promotion import choose_profile

    selection = Selection.of(only)  # an empty pattern is refused before anything is read
    manifest = load_manifest(manifest_path)
    catalog = load_catalog(prices)
    records = ledger.records(manifest.name) if ledger is not None else []
    decisions = ledger.decisions(manifest.name) if ledger is not None else []
    with _gc_paused():
        chosen = choose_profile(manifest, catalog, decisions, profile=profile, approved=approved)
        plan = make_plan(
            chosen.jobs, records, campaign=manifest.name, manifest_path=manifest_path,
            catalog=catalog, budget_usd=max_usd if max_usd is not None else manifest.budget_usd,
            retry_failed=retry_failed, resubmit_unknown=resubmit_unknown, only=selection,
            others=chosen.others, profiles=chosen.view, decisions=decisions,
        )
    return manifest, plan


@dataclass(frozen=True, slots=True)
class LedgerView:
    """A manifest planned against its ledger, for the commands that only look."""

    manifest: Manifest
    plan: Plan
    records: tuple[JobRecord, ...]  # every ledger row of the campaign, oldest first
    ledger_path: str  # where the ledger is, as the user may see it (a path, or a URL without its password)
    decisions: tuple[Decision, ...] = ()  # the review's current decisions of the campaign
    location: str = ""  # where to open it again (a URL may hold its password: never shown)


def view_campaign(manifest_path: Path, state: str | None, **flags: Any) -> LedgerView:
    """Plan ``manifest_path`` against the ledger at ``state`` without running or writing anything.

    The ledger is opened read-only (on a read-only file system too) and never
    recovered: a ``submitting`` row may be a live run's, and only a run, holding the
    run lock, may decide it crashed. A missing or empty ledger is read as empty and
    not created; a file that is not a ledger is refused, untouched.
    """
    path = ledger_location(state)
    ledger = open_ledger(path, read_only=True)
    if ledger is None:
        manifest, plan = load_plan(manifest_path, None, **flags)
        return LedgerView(manifest, plan, (), shown_location(path), location=path)
    with ledger:
        manifest, plan = load_plan(manifest_path, ledger, **flags)
        records = tuple(ledger.records(plan.campaign))
        decisions = tuple(ledger.decisions(plan.campaign))
    return LedgerView(manifest, plan, records, shown_location(path), decisions, location=path)


def check_plan_media(view: LedgerView) -> MediaReport:
    """``plan --check-media``: the source media of the jobs to submit, with the ledger as their cache
    (opened for writing for that alone: see :mod:`.media.preflight`)."""
    from ..media import check_for_plan

    return check_for_plan(view.plan, view.location or view.ledger_path)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large campaign is planned.

    Planning allocates hundreds of thousands of small objects that all stay alive
    (the jobs) and form no cycles; the collector would rescan the growing heap
    again and again for nothing (a third of plan time at 100,000 jobs). They live
    as long as the plan, so afterwards they are frozen out of its scans too.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
