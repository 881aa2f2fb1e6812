"""When the media check runs: before ``run`` submits anything, and in ``plan --check-media``.

Only the jobs the run would submit are checked (a ``done`` job's media cost nothing).
``run`` checks through its own ledger; ``--no-check-media`` skips the check and says
so, and so does ``--simulate``, whose simulator fetches no media (the example
campaigns' media hosts are made up): ``plan --check-media`` checks them.

``plan`` otherwise only reads the ledger; with ``--check-media`` it opens it for
writing, for the media cache only (creating it when there is none yet, migrating an
older one, as a run would), so the next plan within the hour asks nothing. Where the
ledger cannot be written (a read-only file system), the check runs without the cache
and the summary says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..errors import LedgerError
from ..ledger import Ledger, open_ledger
from ..plan import Plan
from .check import MediaReport, check_media
from .uses import MediaUse, media_uses

__all__ = ["check_before_run", "check_for_plan"]


def check_before_run(plan: Plan, ledger: Ledger, *, enabled: bool, simulate: bool,
                     note: Callable[[str], None]) -> None:
    """Check the media of the jobs ``plan`` would submit; raise the problems (exit 2), nothing submitted."""
    uses = _uses(plan)
    if not uses:
        return
    if not enabled:
        note(f"media not checked ({len(uses)} URL(s)): --no-check-media")
        return
    if simulate:
        note(f"media not checked ({len(uses)} URL(s)): --simulate fetches none; plan --check-media checks them")
        return
    report = check_media(uses, plan.catalog.media, ledger, note=note)
    note(report.summary() + ("; nothing was submitted" if report.problems else ""))
    report.raise_if_any()


def check_for_plan(plan: Plan, ledger_location: str) -> MediaReport:
    """``plan --check-media``: the report, with the ledger at ``ledger_location`` as the cache."""
    uses = _uses(plan)
    if not uses:
        return MediaReport()
    limits = plan.catalog.media
    try:
        ledger = open_ledger(ledger_location)
    except LedgerError as exc:
        return replace(check_media(uses, limits, None), cache_note=exc.message)
    with ledger:
        return check_media(uses, limits, ledger)


def _uses(plan: Plan) -> dict[str, list[MediaUse]]:
    return media_uses((planned.priced.job for planned in plan.to_submit), plan.catalog.media)
