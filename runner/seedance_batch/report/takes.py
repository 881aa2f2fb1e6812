"""What the reports say of a job as a take: the review's decision, and the same take in the other profiles.

A take's decision is the one a reviewer made on its own job, else on its counterpart in
another profile (a final shows the verdict, pick and note its draft got: that is why it
was rendered). Its counterparts are the same shot, combination and take in each other
profile of the manifest (:mod:`seedance_batch.promotion`), each with its video when it
is on disk, so a report of the finals puts each final beside the draft it came from.
Every text (a label made of matrix values, a reviewer's note and name) is redacted like
the rest of the report.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..ledger import Decision
from ..plan import Plan, PlannedJob
from .redact import Redactor

__all__ = ["Counterpart", "take_fields", "take_paths"]


@dataclass(frozen=True, slots=True)
class Counterpart:
    """The same take in another profile: its label, video (relative to the working directory), and link."""

    profile: str
    label: str
    video: str
    href: str | None


def take_fields(planned: PlannedJob, plan: Plan, redactor: Redactor, *, report_dir: str, output_dir: str,
                present: Collection[str]) -> dict[str, Any]:
    """The report row's take, profile, decision (verdict, picked, note, reviewer) and counterparts."""
    job = planned.priced.job
    view = plan.profiles
    others = {} if view is None else view.counterparts.get(job.take_label, {})
    decision = plan.decisions.get(job.key) or next(
        (found for other in others.values() if (found := plan.decisions.get(other.job.key)) is not None), None)
    counterparts = []
    for name, other in others.items():
        if name == job.profile:
            continue
        video = posixpath.normpath(posixpath.join(output_dir, other.job.output_path))
        href = quote(posixpath.relpath(video, posixpath.normpath(report_dir))) if other.job.output_path in present else None
        counterparts.append(Counterpart(name, redactor.text(other.job.label) or "", video, href))
    return {"take": job.take, "profile": job.profile, **_decision_fields(decision, redactor),
            "counterparts": tuple(counterparts)}


def _decision_fields(decision: Decision | None, redactor: Redactor) -> dict[str, Any]:
    if decision is None:
        return {"verdict": None, "picked": False, "note": "", "reviewer": ""}
    return {"verdict": decision.verdict.value, "picked": decision.picked, "note": redactor.text(decision.note) or "",
            "reviewer": redactor.text(decision.reviewer) or ""}


def take_paths(plan: Plan) -> list[str]:
    """The output paths of every counterpart of the plan's jobs (their files are linked when on disk)."""
    view = plan.profiles
    if view is None:
        return []
    return [other.job.output_path for planned in plan.jobs
            for other in view.counterparts.get(planned.priced.job.take_label, {}).values()
            if other.job.profile != planned.priced.job.profile]
