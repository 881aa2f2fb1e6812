"""The one orchestrator: manifest -> expand -> price -> plan -> (simulator) -> run -> reports.

The stages are pure functions of plain data; this package composes them, in order,
with the I/O around them: reading the manifest and the price file, the ledger (read
only for :func:`view_campaign`; run lock and crash recovery for :func:`run_manifest`),
the API credentials (:mod:`seedance_batch.environment`; never the manifest), the in-process
simulator for ``--simulate``, the webhook receiver, the run's signals (Ctrl-C once:
no new submits; twice, or SIGTERM: leave now), and the reports. The CLI parses,
calls one of these, and prints. By meaning: :mod:`.planning` (load a plan, view a
campaign against its ledger), :mod:`.running` (render it), :mod:`.reviewing` (review its takes).

A ledger that fails while the run renders (a full disk, a dropped database
connection) ends the run with :class:`~seedance_batch.errors.LedgerFailed` (exit 5): some jobs
may be submitted, so it is not the "nothing was submitted" of a ledger that cannot
be opened (exit 2).
"""

from __future__ import annotations

from .planning import LedgerView, check_plan_media, load_plan, view_campaign
from .reviewing import ReviewOptions, review_campaign
from .running import RunOptions, RunOutcome, run_manifest

__all__ = ["LedgerView", "ReviewOptions", "RunOptions", "RunOutcome", "check_plan_media", "load_plan", "review_campaign",
           "run_manifest", "view_campaign"]
