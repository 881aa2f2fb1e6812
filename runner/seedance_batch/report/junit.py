"""junit.xml: one testcase per job, so CI systems show renders like tests.

``done`` passes; ``failed``, ``unknown`` and ``timed_out`` are failures carrying
the API's message; every other state (planned, pending, in flight) is skipped
with the reason, since nothing is wrong with it yet. The layout follows the
common JUnit schema (testsuites > testsuite > testcase) that GitHub, GitLab and
Jenkins read.

Every attribute and text goes through :func:`~seedance_batch.safetext.xml_safe` as
it is set: a task id with U+FFFE or a manifest name with a control character in it
must not make the document unreadable to the CI system.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping

from ..ledger import VOCABULARY
from ..safetext import xml_safe
from .data import Report, ReportRow
from .fmt import PROBLEM_REASONS

__all__ = ["report_junit"]

# What a job that is not done yet (and not wrong) is waiting for: a skipped test case.
_WHY_SKIPPED = {state: info.waiting for state, info in VOCABULARY.items() if info.waiting}


def report_junit(report: Report) -> str:
    """The JUnit XML document (UTF-8, with declaration) for ``report``."""
    rows = report.rows
    failures = sum(1 for row in rows if row.problem)
    skipped = sum(1 for row in rows if _skipped(row))
    seconds = f"{sum(row.render_seconds or 0 for row in rows):.3f}"
    counts = {"tests": str(len(rows)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}
    root = ET.Element("testsuites", _safe({"name": "seedance-batch", **counts, "time": seconds}))
    suite = _sub(root, "testsuite", {
        "name": report.campaign, **counts, "time": seconds,
        "timestamp": report.started_at or report.generated_at,
    })
    properties = _sub(suite, "properties", {})
    for name, value in _properties(report):
        _sub(properties, "property", {"name": name, "value": value})
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
        ("usd_refunded", f"{totals.usd_refunded:.2f}"),
        ("usd_planned", f"{totals.usd_planned:.2f}"),
        ("budget_usd", "" if totals.budget_usd is None else f"{totals.budget_usd:.2f}"),
    ]


def _skipped(row: ReportRow) -> bool:
    return row.state in _WHY_SKIPPED


def _testcase(campaign: str, row: ReportRow) -> ET.Element:
    case = ET.Element("testcase", _safe({"classname": f"{campaign}.{row.shot}", "name": row.label}))
    if row.render_seconds is not None:
        case.set("time", f"{row.render_seconds:.3f}")
    if row.problem:
        message = row.error_message or PROBLEM_REASONS[row.state]
        failure = _sub(case, "failure", {"message": message, "type": row.error_class or row.state})
        failure.text = xml_safe(_details(row))
    elif _skipped(row):
        _sub(case, "skipped", {"message": f"{row.state}: {_WHY_SKIPPED[row.state]}"})
    if row.href:
        _sub(case, "system-out", {}).text = xml_safe(f"[[ATTACHMENT|{row.video}]]")
    return case


def _safe(attributes: Mapping[str, str]) -> dict[str, str]:
    return {name: xml_safe(value) for name, value in attributes.items()}


def _sub(parent: ET.Element, tag: str, attributes: Mapping[str, str]) -> ET.Element:
    """A child element whose attributes XML 1.0 can carry, whatever the report holds."""
    return ET.SubElement(parent, tag, _safe(attributes))


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
