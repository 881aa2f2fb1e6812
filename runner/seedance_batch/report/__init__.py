"""Reports: report.html, report.csv, report.json, junit.xml and summary.md.

:func:`write_reports` is the one entry point (the run, ``plan --report`` and the
``report`` command call it). The report itself is a pure function of the plan and
the ledger's records (:func:`.data.build_report`); each format is a pure function
of that report; only this module touches the disk and the environment.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import Location, UsageError
from ..ledger import JobRecord
from ..plan import Plan
from ..safetext import one_line
from .data import Report, build_report
from .html import report_html
from .junit import report_junit
from .markdown import cost_against_budget, report_markdown
from .tables import CSV_ENCODING, report_csv, report_json

__all__ = ["ReportPaths", "default_report_dir", "file_sha256", "report_line", "write_reports"]

# GitHub Actions' per-step summary file; summary.md is appended to it when set.
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


@dataclass(frozen=True, slots=True)
class ReportPaths:
    """The files one :func:`write_reports` call wrote."""

    folder: Path
    html: Path
    csv: Path
    json: Path
    junit: Path
    summary: Path
    report: Report

    def files(self) -> tuple[Path, ...]:
        """The five report files, in the order the README lists them."""
        return (self.html, self.csv, self.json, self.junit, self.summary)


def default_report_dir(campaign: str, root: Path | str = "reports") -> Path:
    """``reports/<campaign>/``, the default report folder."""
    return Path(root) / campaign


def write_reports(
    plan: Plan,
    records: Iterable[JobRecord],
    *,
    out_dir: Path | str,
    output_dir: Path | str = "renders",
    manifest_path: Path | str | None = None,
    manifest_sha256: str | None = None,
    started_at: datetime | str | None = None,
    finished_at: datetime | str | None = None,
    secrets: Iterable[str] = (),
    step_summary: bool = True,
) -> ReportPaths:
    """Write the five reports of ``plan`` + ledger ``records`` into ``out_dir``.

    ``output_dir`` is where downloaded videos live (``<output_dir>/<job.output_path>``);
    the HTML links them relative to ``out_dir``. ``manifest_sha256`` is computed from
    ``manifest_path`` (default: the plan's) when not given. ``started_at``/``finished_at``
    are the run's bounds (default: the span of the ledger's activity). The API key (from
    the environment or ``./.env``) and any ``secrets`` are scrubbed from every file. With
    ``step_summary`` and ``$GITHUB_STEP_SUMMARY`` set, summary.md is appended there too.
    Each file is replaced atomically, so a report rebuilt mid-run is never half written.
    """
    folder, renders = Path(out_dir), Path(output_dir)
    manifest = Path(manifest_path) if manifest_path is not None else plan.manifest_path
    report = build_report(
        plan, records,
        report_dir=_from_cwd(folder), output_dir=_from_cwd(renders),
        manifest_path=str(manifest),
        manifest_sha256=manifest_sha256 or file_sha256(manifest),
        generated_at=datetime.now(timezone.utc),
        present=_downloaded(plan, renders),
        started_at=started_at, finished_at=finished_at,
        secrets=(*_api_keys(), *secrets),
    )
    paths = _paths(folder, report)
    summary = report_markdown(report)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _replace(paths.html, report_html(report), "utf-8")
        _replace(paths.csv, report_csv(report), CSV_ENCODING)
        _replace(paths.json, report_json(report), "utf-8")
        _replace(paths.junit, report_junit(report), "utf-8")
        _replace(paths.summary, summary, "utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the reports there: {_why(exc)}", location=Location(file=str(folder)),
                         hint="pick a folder you can write with --report-dir DIR") from None
    if step_summary and os.environ.get(STEP_SUMMARY_ENV):
        _append_step_summary(os.environ[STEP_SUMMARY_ENV], summary)
    return paths


def _append_step_summary(target: str, summary: str) -> None:
    try:
        with open(target, "a", encoding="utf-8") as out:
            out.write(summary + "\n")
    except OSError as exc:
        raise UsageError(f"cannot append summary.md to ${STEP_SUMMARY_ENV}: {_why(exc)}",
                         location=Location(file=target), hint="unset it outside GitHub Actions") from None


def _why(exc: OSError) -> str:
    """An OS error in words, without the path (the location already names it)."""
    if isinstance(exc, FileExistsError):
        return "a file of that name is in the way (a folder is needed)"
    return (exc.strerror or type(exc).__name__).lower()


def report_line(paths: ReportPaths) -> str:
    """What the CLI prints after writing: where the reports are, and the verdict in brief (one inert line)."""
    totals = paths.report.totals
    done = totals.by_state.get("done", 0)
    return (
        f"{one_line(str(paths.html))} (and report.csv, report.json, junit.xml, summary.md): "
        f"{totals.jobs} jobs, {done} done, "
        f"{totals.problems} failed/unknown/timed out; {cost_against_budget(totals).replace('**', '')}"
    )


def _api_keys() -> tuple[str, ...]:
    """The API key wherever the CLI may have found it: the environment, or ./.env."""
    from ..environment import api_keys

    return api_keys()


def _paths(folder: Path, report: Report) -> ReportPaths:
    return ReportPaths(
        folder=folder, html=folder / "report.html", csv=folder / "report.csv", json=folder / "report.json",
        junit=folder / "junit.xml", summary=folder / "summary.md", report=report,
    )


def file_sha256(path: Path | str) -> str:
    """sha256 of a file's bytes; empty when it cannot be read (a plan built in memory)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 16), b""):
                digest.update(block)
    except OSError:
        return ""
    return digest.hexdigest()


def _from_cwd(path: Path) -> str:
    """``path`` relative to the working directory, with forward slashes (links need them)."""
    try:
        return Path(os.path.relpath(path.resolve())).as_posix()
    except ValueError:  # another drive on Windows: keep it absolute
        return path.resolve().as_posix()


def _downloaded(plan: Plan, output_dir: Path) -> frozenset[str]:
    from .takes import take_paths  # each job's counterparts in the other profiles (a final's draft)

    paths = [planned.priced.job.output_path for planned in plan.jobs] + take_paths(plan)
    return frozenset(path for path in paths if (output_dir / path).is_file())


def _replace(path: Path, text: str, encoding: str) -> None:
    # One temporary per process: a `report` run while a run writes its own must not share one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding=encoding, newline="") as out:
        out.write(text)
    os.replace(temporary, path)
