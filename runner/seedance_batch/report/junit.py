"""junit.xml: one testcase per job, so CI systems show renders like tests.

``done`` passes; ``failed``, ``unknown`` and ``timed_out`` are failures carrying
the API's message; every other state (planned, pending, in flight) is skipped
with the reason, since nothing is wrong with it yet. The layout follows the
common JUnit schema (testsuites > testsuite > testcase) that GitHub, GitLab and
Jenkins read.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .data import Report, ReportRow
from .fmt import PROBLEM_REASONS

__all__ = ["report_junit"]

_WHY_SKIPPED = {
    "planned": "not submitted yet",
    "pending": "recorded, not submitted yet",
    "submitting": "being submitted",
    "submitted": "rendering",
    "finished": "rendered, not downloaded yet",
}


def report_junit(report: Report) -> str:
    """The JUnit XML document (UTF-8, with declaration) for ``report``."""
    rows = report.rows
    failures = sum(1 for row in rows if row.problem)
    skipped = sum(1 for row in rows if _skipped(row))
    seconds = f"{sum(row.render_seconds or 0 for row in rows):.3f}"
    counts = {"tests": str(len(rows)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}
    root = ET.Element("testsuites", {"name": "seedance-batch", **counts, "time": seconds})
    suite = ET.SubElement(root, "testsuite", {
        "name": report.campaign, **counts, "time": seconds,
        "timestamp": report.started_at or report.generated_at,
    })
    properties = ET.SubElement(suite, "properties")
    for name, value in _properties(report):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for row in rows:
        suite.append(_testcase(report.campaign, row))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _properties(report: Report) -> list[tuple[str, str]]:
    totals = report.totals
    return [
        ("manifest", report.manifest_path),
        ("manifest_sha256", report.manifest_sha256),
        ("usd_spent", f"{totals.usd_spent:.2f}"),
        ("usd_planned", f"{totals.usd_planned:.2f}"),
        ("budget_usd", "" if totals.budget_usd is None else f"{totals.budget_usd:.2f}"),
    ]


def _skipped(row: ReportRow) -> bool:
    return row.state in _WHY_SKIPPED


def _testcase(campaign: str, row: ReportRow) -> ET.Element:
    case = ET.Element("testcase", {"classname": f"{campaign}.{row.shot}", "name": row.label})
    if row.render_seconds is not None:
        case.set("time", f"{row.render_seconds:.3f}")
    if row.problem:
        message = row.error_message or PROBLEM_REASONS[row.state]
        failure = ET.SubElement(case, "failure", {"message": message, "type": row.error_class or row.state})
        failure.text = _details(row)
    elif _skipped(row):
        ET.SubElement(case, "skipped", {"message": f"{row.state}: {_WHY_SKIPPED[row.state]}"})
    if row.href:
        ET.SubElement(case, "system-out").text = f"[[ATTACHMENT|{row.video}]]"
    return case


def _details(row: ReportRow) -> str:
    lines = [
        f"state: {row.state} ({PROBLEM_REASONS[row.state]})",
        f"model: {row.model} {row.resolution} {row.duration}s {row.aspect_ratio or ''}".rstrip(),
        f"attempts: {row.attempts}",
    ]
    if row.task_id:
        lines.append(f"task_id: {row.task_id}")
    if row.error_message:
        lines.append(f"message: {row.error_message}")
    lines.append(f"prompt: {row.prompt}")
    return "\n".join(lines)
