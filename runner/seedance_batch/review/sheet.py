"""The review's contact sheet: shots as rows, combinations as columns, takes side by side.

A pure function of the report (:func:`~seedance_batch.report.data.build_report`: the
same rows, prices, states and redaction as report.html), the plan's jobs (in the same
order as the report's rows) and the ledger's current decisions. One sheet per set of
matrix axes, as in the report; within a cell, takes in take order. Every take gets its
place in the review order (:attr:`Take.index`), which the keyboard follows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..ledger import Decision, JobState, Verdict
from ..report.data import Report, ReportRow
from ..report.html import Column  # the report's contact-sheet column: the same combination, shown alike
from .takes import JobLike, combination_id, combination_values, take_of

__all__ = ["MEDIA_PREFIX", "ReviewSheet", "SheetRow", "Take", "Tally", "review_sheets", "tally"]

MEDIA_PREFIX = "/media/"


@dataclass(frozen=True, slots=True)
class Take:
    """One job as the review shows it: its report row, its take number, its decision."""

    index: int
    row: ReportRow
    take: int
    combination: str
    media: str | None  # the video's URL on this server, when it is on disk
    decision: Decision | None

    @property
    def verdict(self) -> str:
        """``approved``, ``rejected`` or ``undecided``."""
        return (self.decision.verdict if self.decision else Verdict.UNDECIDED).value

    @property
    def picked(self) -> bool:
        """The take picked for its combination."""
        return self.decision is not None and self.decision.picked

    @property
    def decidable(self) -> bool:
        """Rendered and downloaded: it can be approved or picked (anything can be rejected)."""
        return self.row.state == JobState.DONE.value


@dataclass(frozen=True, slots=True)
class SheetRow:
    """One shot: a cell per column, each the takes of that combination in take order."""

    shot: str
    cells: tuple[tuple[Take, ...], ...]


@dataclass(frozen=True, slots=True)
class ReviewSheet:
    """Shots x combinations of one set of matrix axes."""

    axes: tuple[str, ...]
    columns: tuple[Column, ...]
    rows: tuple[SheetRow, ...]

    @property
    def title(self) -> str:
        """``locale × aspect_ratio``."""
        return " × ".join(self.axes) or "no matrix"


@dataclass(frozen=True, slots=True)
class Tally:
    """How far the review is: takes by verdict, and picks."""

    takes: int
    approved: int
    rejected: int
    undecided: int
    picked: int


def review_sheets(report: Report, jobs: Sequence[JobLike], decisions: Iterable[Decision]) -> tuple[ReviewSheet, ...]:
    """Lay out the report's rows (``jobs[i]`` is ``report.rows[i]``'s job) as review sheets.

    The report is built with the output folder as its folder, so a row's ``href`` (set
    when its video is on disk) is the video's path under the output folder, as the
    media route serves it.
    """
    if len(jobs) != len(report.rows):
        raise ValueError("the jobs are not the report's")
    by_key = {decision.key: decision for decision in decisions}
    groups: dict[tuple[str, ...], list[tuple[ReportRow, JobLike]]] = {}
    shot_axes: dict[str, tuple[str, ...]] = {}
    for row, job in zip(report.rows, jobs, strict=True):
        axes = shot_axes.setdefault(row.shot, tuple(axis for axis, _ in combination_values(row.combination)))
        groups.setdefault(axes, []).append((row, job))
    counter = iter(range(len(report.rows)))
    return tuple(_sheet(axes, members, by_key, counter) for axes, members in groups.items())


def _sheet(axes: tuple[str, ...], members: list[tuple[ReportRow, JobLike]], decisions: Mapping[str, Decision],
           counter: Iterable[int]) -> ReviewSheet:
    columns: dict[tuple[tuple[str, str], ...], int] = {}
    shots: dict[str, dict[int, list[tuple[ReportRow, JobLike]]]] = {}
    for row, job in members:
        column = columns.setdefault(combination_values(row.combination), len(columns))
        shots.setdefault(row.shot, {}).setdefault(column, []).append((row, job))
    numbers = iter(counter)
    rows = []
    for shot, cells in shots.items():
        laid_out = []
        for column in range(len(columns)):
            in_cell = sorted(cells.get(column, ()), key=lambda member: take_of(member[1]))
            laid_out.append(tuple(_take(next(numbers), row, job, decisions) for row, job in in_cell))
        rows.append(SheetRow(shot, tuple(laid_out)))
    return ReviewSheet(axes=axes, columns=tuple(Column(values) for values in columns), rows=tuple(rows))


def _take(index: int, row: ReportRow, job: JobLike, decisions: Mapping[str, Decision]) -> Take:
    return Take(index=index, row=row, take=take_of(job), combination=combination_id(job),
                media=MEDIA_PREFIX + row.href if row.href else None, decision=decisions.get(row.key))


def tally(sheets: Iterable[ReviewSheet]) -> Tally:
    """The review's progress over every take of ``sheets``."""
    takes = [take for sheet in sheets for line in sheet.rows for cell in line.cells for take in cell]
    verdicts = [take.verdict for take in takes]
    return Tally(takes=len(takes), approved=verdicts.count(Verdict.APPROVED.value),
                 rejected=verdicts.count(Verdict.REJECTED.value), undecided=verdicts.count(Verdict.UNDECIDED.value),
                 picked=sum(1 for take in takes if take.picked))
