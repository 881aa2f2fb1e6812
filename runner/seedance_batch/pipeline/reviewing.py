"""The review: a campaign's takes in the browser, decisions into the ledger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..ledger import Verdict, ledger_location, open_ledger
from ..plan import Plan

if TYPE_CHECKING:  # the run's stack (httpx, anyio, starlette) is imported only by run_manifest
    from ..review import RunningReview
from .planning import load_plan

__all__ = ["ReviewOptions", "review_campaign"]


@dataclass(frozen=True, slots=True)
class ReviewOptions:
    """What ``review`` was asked for (None: the default)."""

    manifest: Path
    state: str | None = None
    prices: str | None = None
    profile: str | None = None
    listen: str | None = None
    reviewer: str | None = None


def review_campaign(options: ReviewOptions, *, announce: Callable[[RunningReview, Plan], None]) -> int:
    """Serve the review of a manifest until Ctrl-C; how many of its takes are approved or rejected then.

    The ledger is opened for writing (each decision is written at once) but never
    locked for a run nor recovered: a run may render the campaign meanwhile, and a
    reload shows what it finished. ``announce`` gets the review once it answers.
    """
    from ..environment import api_keys
    from ..review import ReviewCampaign, parse_listen, review_until_signal, reviewer_name

    host, port = parse_listen(options.listen)
    reviewer = reviewer_name(options.reviewer)
    with open_ledger(ledger_location(options.state)) as ledger:
        manifest, plan = load_plan(options.manifest, ledger, prices=options.prices, profile=options.profile)
        campaign = ReviewCampaign(plan=plan, manifest_path=str(manifest.path), manifest_sha256=manifest.sha256,
                                  output_dir=Path(manifest.output_dir), reviewer=reviewer,
                                  profile=plan.profiles.profile if plan.profiles is not None else None,
                                  secrets=api_keys())
        try:
            review_until_signal(campaign, ledger, host=host, port=port, announce=lambda review: announce(review, plan))
        except UsageError as exc:  # serving's words name the simulator's --host/--port
            raise UsageError(f"cannot listen on --listen {host}:{port}: {exc.message.rsplit(': ', 1)[-1]}",
                             hint="pass --listen HOST:PORT with an IPv4 address of this machine and a free port "
                                  "(0: any)") from None
        keys = {planned.priced.job.key for planned in plan.jobs}
        return sum(1 for d in ledger.decisions(plan.campaign) if d.key in keys and d.verdict is not Verdict.UNDECIDED)
