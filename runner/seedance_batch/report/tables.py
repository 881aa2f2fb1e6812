"""report.csv and report.json: the same rows, for spreadsheets and for scripts.

CSV columns are a stable interface (README "Reports" lists them): new columns are
only ever appended; the request parameters' columns come from the parameter table
(:mod:`seedance_batch.expand.params`): the first version's after ``state``, those added
since in the order they shipped (:data:`_APPENDED`), and a parameter added to the table
later after every column shipped before it. The comparison provider's price keeps its
first name, ``fal_usd``, in both files.

The CSV is RFC 4180 (``csv`` module, CRLF line ends, fields with commas, quotes
or newlines quoted) in UTF-8 *with* a byte-order mark, because
Excel reads a CSV without one in the local code page and garbles non-ASCII prompts;
LibreOffice, Google Sheets and ``csv``/pandas with ``utf-8-sig`` read it as well.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

import orjson

from ..expand.params import BOOLEAN, CSV_AFTER_STATE, CSV_AT_END, INTEGER, Param, csv_params
from .data import Report, ReportRow, Totals

__all__ = ["CSV_COLUMNS", "CSV_ENCODING", "report_csv", "report_dict", "report_json"]

CSV_ENCODING = "utf-8-sig"
# The request parameters' columns come from the parameter table: the first version's
# after ``state``, any later one after every other column (columns are only appended).
_WITH_STATE = csv_params(CSV_AFTER_STATE)
_AT_END = csv_params(CSV_AT_END)
# The columns appended since the first version, in the order they shipped: a parameter's (``seed``) and the
# report's own. A parameter column at the end not among them (added to the table later) comes after them all:
# placed by the table alone it would land before ``refund_usd`` and move every column shipped after it.
_APPENDED = (
    "seed",
    "refund_usd",  # what the service gave back for a failed task (spent_usd is net of it)
    "take", "profile", "verdict", "picked", "note",  # the job as a take, and the review's decision of it
)
CSV_COLUMNS: tuple[str, ...] = (
    "label", "shot", "combination", "state", *(p.csv for p in _WITH_STATE if p.csv), "attempts", "credits",
    "cost_usd", "fal_usd", "spent_usd", "render_s", "submitted_at", "finished_at", "task_id", "file", "size",
    "sha256", "error_class", "error_message", "private", "prompt", "key", "change", *_APPENDED,
    *(p.csv for p in _AT_END if p.csv and p.csv not in _APPENDED),
)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Columns whose text this module writes itself from numbers, booleans or the ledger's own
# state words; every other column holds outside text (the service's task ids and messages,
# the manifest's names and paths, the ledger's stamps) and is guarded.
_OWN_TEXT = frozenset({
    "state", "attempts", "credits", "cost_usd", "fal_usd", "spent_usd", "render_s", "size", "private", "key", "change",
    "refund_usd", "take", "verdict", "picked",
    *(p.csv for p in (*_WITH_STATE, *_AT_END) if p.csv and p.kind in (INTEGER, BOOLEAN)),
})
JSON_SCHEMA_ID = "seedance-batch/report/1"


def report_csv(report: Report) -> str:
    """The CSV text (one row per job, header first); write it with :data:`CSV_ENCODING`."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        values = _csv_values(row)
        writer.writerow([_cell(name, values.get(name)) for name in CSV_COLUMNS])  # a shipped column stays (empty if its parameter left)
    return out.getvalue()


def _csv_values(row: ReportRow) -> dict[str, Any]:
    return {
        "label": row.label, "shot": row.shot, "combination": _combination_text(row), "state": row.state,
        **_param_cells(row, _WITH_STATE),
        "attempts": row.attempts, "credits": row.credits, "cost_usd": _money(row.cost_usd),
        "fal_usd": _money(row.comparison_usd), "spent_usd": _money(row.spent_usd),
        "render_s": None if row.render_seconds is None else f"{row.render_seconds:g}",
        "submitted_at": row.submitted_at, "finished_at": row.finished_at, "task_id": row.task_id,
        "file": row.video if row.href else None, "size": row.size, "sha256": row.sha256,
        "error_class": row.error_class, "error_message": row.error_message,
        "private": _bool(row.private), "prompt": row.prompt, "key": row.key, "change": row.change,
        **_param_cells(row, _AT_END),
        "refund_usd": _money(row.refund_usd) if row.refund_credits else None,
        "take": row.take, "profile": row.profile, "verdict": row.verdict, "picked": _bool(row.picked),
        "note": row.note or None,
    }


def _param_cells(row: ReportRow, params: tuple[Param, ...]) -> dict[str, Any]:
    """The parameters' cells: a whole number as written, true/false, nothing when unset."""
    return {p.csv: _bool(v) if isinstance(v := row.params.get(p.name), bool) else v for p in params if p.csv}


def _cell(name: str, value: Any) -> str:
    text = "" if value is None else str(value)
    if name not in _OWN_TEXT and text.startswith(_FORMULA_START):
        return "'" + text  # shown as typed, never evaluated
    return text


def _combination_text(row: ReportRow) -> str:
    """``locale=en-US; ratio=16:9``: the combination in one cell."""
    return "; ".join(f"{axis}={value}" for axis, value in row.combination)


def _bool(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _money(value: Decimal) -> str:
    # Exact decimal text, no float rounding, no currency sign: a number in any spreadsheet.
    return format(value.normalize(), "f") if value else "0"


def report_dict(report: Report) -> dict[str, Any]:
    """The report as one JSON-ready object: header, totals, and the jobs (money in USD numbers)."""
    return {
        "schema": JSON_SCHEMA_ID,
        "campaign": report.campaign,
        "manifest": {"path": report.manifest_path, "sha256": report.manifest_sha256},
        "generated_at": report.generated_at,
        "run": {
            "started_at": report.started_at, "finished_at": report.finished_at,
            "duration_s": report.duration_seconds,
        },
        "prices": {"source": report.prices_source, "snapshot_date": report.prices_snapshot,
                   "comparison": report.comparison},
        "totals": _totals_dict(report.totals),
        "selection": report.selection,  # "11 of 22 jobs selected by --only ..." (null: every job)
        "profile": report.profile,  # the profile reported (null: the manifest has none)
        "jobs": [_row_dict(row) for row in report.rows],
    }


def report_json(report: Report) -> str:
    """:func:`report_dict` as indented UTF-8 JSON text.

    orjson writes the same text as ``json.dumps(indent=2, ensure_ascii=False)`` several
    times faster (a 2,000-job report.json is 2 MB); the json module takes what orjson
    refuses (integers past 64 bits, lone surrogates).
    """
    data = report_dict(report)
    try:
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode("utf-8") + "\n"
    except orjson.JSONEncodeError:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _totals_dict(totals: Totals) -> dict[str, Any]:
    return {
        "jobs": totals.jobs,
        "by_state": dict(totals.by_state),
        "problems": totals.problems,
        "seconds_planned": totals.seconds_planned,
        "seconds_rendered": totals.seconds_rendered,
        "credits_planned": totals.credits_planned,
        "credits_spent": totals.credits_spent,
        "usd_planned": float(totals.usd_planned),
        "usd_spent": float(totals.usd_spent),
        "usd_to_render": float(totals.usd_to_render),
        "fal_usd": float(totals.comparison_usd),
        "budget_usd": None if totals.budget_usd is None else float(totals.budget_usd),
        "within_budget": totals.within_budget,
        "superseded_jobs": totals.superseded_jobs,
        "superseded_usd": float(totals.superseded_usd),
        "credits_refunded": totals.credits_refunded,
        "usd_refunded": float(totals.usd_refunded),
    }


def _row_dict(row: ReportRow) -> dict[str, Any]:
    return {
        "label": row.label, "shot": row.shot, "combination": dict(row.combination), "key": row.key,
        "state": row.state, "change": row.change, **_param_values(row, _WITH_STATE),
        "attempts": row.attempts, "credits": row.credits, "cost_usd": float(row.cost_usd),
        "fal_usd": float(row.comparison_usd), "spent_usd": float(row.spent_usd), "spent_credits": row.spent_credits,
        "task_id": row.task_id, "submitted_at": row.submitted_at, "finished_at": row.finished_at,
        "render_s": row.render_seconds, "file": row.video, "downloaded": row.href is not None,
        "size": row.size, "sha256": row.sha256, "file_url": row.file_url,
        "error_class": row.error_class, "error_message": row.error_message,
        "private": row.private, "prompt": row.prompt, **_param_values(row, _AT_END),
        "refund_credits": row.refund_credits, "refund_usd": float(row.refund_usd),
        "take": row.take, "profile": row.profile,
        "decision": None if row.verdict is None else {
            "verdict": row.verdict, "picked": row.picked, "note": row.note, "reviewer": row.reviewer},
        # The same take in the other profiles: a final's draft, a draft's final.
        "counterparts": [{"profile": c.profile, "label": c.label, "file": c.video, "downloaded": c.href is not None}
                         for c in row.counterparts],
    }


def _param_values(row: ReportRow, params: tuple[Param, ...]) -> dict[str, Any]:
    return {p.csv: row.params.get(p.name) for p in params if p.csv}
