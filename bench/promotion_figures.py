"""Drafts to finals, in dollars: the figures of issue 12's note, from ``plan --json`` on the example.

On manifests/drafts-to-finals.yaml (the Brightside launch, takes: 3): what the draft
round costs, what rendering every take at final quality would cost, and what promoting
one take per combination costs (take 1 of each approved in a scratch ledger, as a
reviewer would in the review app, then ``plan --profile final --approved --json``).
Prints one JSON line. Nothing is rendered or spent: plans only.

    python bench/promotion_figures.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from seedance_batch.ledger import DecisionChange, Verdict, open_ledger
from seedance_batch.pipeline import load_plan
from seedance_batch.review.takes import combination_id

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
EXAMPLE = "drafts-to-finals.yaml"


def plan_json(folder: Path, *args: str) -> dict[str, Any]:
    """``seedance-batch plan EXAMPLE --json ARGS`` in ``folder`` (exit 3, over budget, still prints the plan)."""
    env = {**os.environ, "SEEDANCE_STATE": str(folder / "ledger.sqlite")}
    done = subprocess.run([sys.executable, "-m", "seedance_batch", "plan", EXAMPLE, "--json", *args], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode not in (0, 3):
        raise SystemExit(done.stderr)
    return dict(json.loads(done.stdout))


def approve_first_takes(folder: Path) -> int:
    """Approve take 1 of every combination's draft, as a reviewer would; how many were approved."""
    with open_ledger(str(folder / "ledger.sqlite")) as ledger:
        _, plan = load_plan(folder / EXAMPLE, ledger, profile="draft")
        firsts = [p.priced.job for p in plan.jobs if p.priced.job.take == 1]
        for job in firsts:
            ledger.decide(job.campaign, job.key, DecisionChange(verdict=Verdict.APPROVED), label=job.label,
                          combination=combination_id(job), reviewer="bench")
    return len(firsts)


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name in (EXAMPLE, "locales.csv"):
            shutil.copy(MANIFESTS / name, folder / name)
        drafts = plan_json(folder)
        finals = plan_json(folder, "--profile", "final")
        combinations = approve_first_takes(folder)
        promoted = plan_json(folder, "--profile", "final", "--approved")
    draft_usd, all_final_usd, promotion_usd = drafts["total_usd"], finals["total_usd"], promoted["total_usd"]
    print(json.dumps({
        "manifest": f"manifests/{EXAMPLE}", "takes": 3, "combinations": combinations,
        "draft_jobs": len(drafts["jobs"]), "draft_usd": draft_usd,
        "all_final_jobs": len(finals["jobs"]), "all_final_usd": all_final_usd,
        "promoted_jobs": len(promoted["jobs"]), "promotion_usd": promotion_usd,
        "drafts_plus_promotion_usd": round(draft_usd + promotion_usd, 2),
        "saving_vs_all_final_usd": round(all_final_usd - draft_usd - promotion_usd, 2),
        "saving_vs_all_final_pct": round(100 * (1 - (draft_usd + promotion_usd) / all_final_usd), 1),
    }))


if __name__ == "__main__":
    main()
