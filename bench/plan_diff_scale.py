"""Benchmark: what changed, at scale: a 10,000- and a 100,000-job campaign after one template edit.

Every job was rendered (done, in the ledger), then one shot template of ten is edited
(a tenth of the jobs are ``changed``), or all ten are (every job is), each job with a
prompt of its own (the templates quote the locale, the ratio and the duration). Prints one JSON line per size: the seconds to
group the changes (``diff_plan``), to build the terminal view (``plan --diff``), to
write ``plan --json`` with the changes and, for comparison, with nothing changed;
microseconds per changed job (flat across sizes means linear) and how many distinct
text pairs were word-diffed. In process, so only the diff is timed (bench/plan_scale.py
times the whole command).

    python bench/plan_diff_scale.py                  # 10,000 and 100,000 jobs
    python bench/plan_diff_scale.py --sizes 100000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from plan_scale import machine_reference_ms, write_manifest  # bench/ is the script's folder, first on sys.path
from seedance_batch import display
from seedance_batch.ledger import JobRecord, JobState
from seedance_batch.pipeline import load_plan
from seedance_batch.plan import Plan, make_plan, write_plan_json
from seedance_batch.plan_diff import Differ, diff_plan


class _Null:
    """A binary stream that keeps nothing (the JSON of 100,000 jobs is 70 MB)."""

    def write(self, data: bytes) -> int:
        return len(data)


def _records(plan: Plan) -> list[JobRecord]:
    return [JobRecord(campaign=p.priced.job.campaign, key=p.priced.job.key, label=p.label, shot=p.priced.job.shot,
                      request=p.priced.job.request, state=JobState.DONE, task_id="task", credits=p.priced.cost.credits,
                      cost_usd=p.priced.cost.usd) for p in plan.jobs]


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


# One shot's template (a tenth of the jobs change), or every shot's (all of them do).
EDITS = {
    "one template": ("Scene 3: {{ product }} on a sunlit table, slow dolly in",
                     "Scene 3: {{ product }} on a sunlit table, slow crane up"),
    "every template": ("on a sunlit table, slow dolly in", "on a sunlit table, slow crane up"),
}


def measure(jobs: int, edit: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_manifest(Path(tmp), jobs)
        _, before = load_plan(path, None)
        records = _records(before)
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace(*EDITS[edit]), encoding="utf-8")
        _, edited = load_plan(path, None)
    priced = [p.priced for p in edited.jobs]
    plan = make_plan(priced, records, manifest_path=path, catalog=edited.catalog, budget_usd=None)
    unchanged = make_plan([p.priced for p in before.jobs], records, manifest_path=path, catalog=before.catalog,
                          budget_usd=None)
    differ = Differ()
    diff_s = _timed(lambda: diff_plan(plan, differ))
    changed = diff_plan(plan).changed_jobs
    return {
        "bench": "plan_diff_scale",
        "edit": edit,
        "jobs": len(plan.jobs),
        "changed": changed,
        "groups": len(diff_plan(plan).groups),
        "text_pairs_compared": differ.compared,
        "diff_s": round(diff_s, 3),
        "us_per_changed_job": round(diff_s / max(changed, 1) * 1e6, 1),
        "terminal_view_s": round(_timed(lambda: display.plan_changes(plan)), 3),
        "json_with_changes_s": round(_timed(lambda: write_plan_json(plan, _Null())), 3),  # type: ignore[arg-type]
        "json_nothing_changed_s": round(_timed(lambda: write_plan_json(unchanged, _Null())), 3),  # type: ignore[arg-type]
        "machine_reference_ms": machine_reference_ms(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated job counts, smallest first")
    args = parser.parse_args()
    for size in sorted(int(s) for s in args.sizes.split(",")):
        for edit in EDITS:
            print(json.dumps(measure(size, edit)), flush=True)


if __name__ == "__main__":
    main()
