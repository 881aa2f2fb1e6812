"""report.html: the contact sheet a creative lead opens to review a campaign.

One self-contained file: Jinja2 templates under ``templates/`` with autoescaping
on (a prompt containing ``<script>`` shows as text), the stylesheet and the small
script inlined, no network. Videos are linked by paths relative to the report
folder. Each downloaded video is a light placeholder in the page source that the
script turns into ``<video controls preload="metadata">`` when its cell nears the
screen, and the job table lays itself out only when scrolled to: 2,000 players
built at once cost seconds before anything shows (bench/report_scale.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import jinja2
from markupsafe import Markup

from ..ledger import VOCABULARY
from .data import STATES, Report, ReportRow
from .fmt import duration, span, state_word, usd, when

__all__ = ["Column", "Sheet", "SheetRow", "contact_sheets", "palette_css", "report_html"]

_RATIO = re.compile(r"^(\d{1,3}):(\d{1,3})$")
# Badge colour families: the CSS styles one class per family.
_TONE = {state: info.tone for state, info in VOCABULARY.items()}


@dataclass(frozen=True, slots=True)
class Column:
    """One combination: a column of the contact sheet."""

    values: tuple[tuple[str, str], ...]

    @property
    def title(self) -> str:
        """The column heading: the combination's values, ``en-US · 9:16``."""
        return " · ".join(value for _, value in self.values) or "all"

    @property
    def detail(self) -> str:
        """The heading's tooltip: each value with its axis, ``locale = en-US, ...``."""
        return ", ".join(f"{axis} = {value}" for axis, value in self.values)


@dataclass(frozen=True, slots=True)
class SheetRow:
    """One shot: its cells, one per column, each the indexes of its jobs in ``report.rows``."""

    shot: str
    cells: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class Sheet:
    """A contact sheet: shots as rows, combinations as columns, in manifest order.

    ``axes`` names the combination's axes (``locale × aspect_ratio``); shots whose
    matrices differ get sheets of their own rather than rows of empty cells.
    """

    axes: tuple[str, ...]
    columns: tuple[Column, ...]
    rows: tuple[SheetRow, ...]

    @property
    def title(self) -> str:
        """The sheet's heading: its axes, ``locale × aspect_ratio``."""
        return " × ".join(self.axes) or "no matrix"


def contact_sheets(report: Report) -> tuple[Sheet, ...]:
    """Lay the report's jobs out as shots x combinations, one sheet per set of axes."""
    groups: dict[tuple[str, ...], list[int]] = {}
    shot_axes: dict[str, tuple[str, ...]] = {}
    for index, row in enumerate(report.rows):
        # A shot belongs to the sheet of its first job's axes (include: may add a few).
        axes = shot_axes.setdefault(row.shot, tuple(axis for axis, _ in row.combination))
        groups.setdefault(axes, []).append(index)
    return tuple(_sheet(report, axes, indexes) for axes, indexes in groups.items())


def _sheet(report: Report, axes: tuple[str, ...], indexes: list[int]) -> Sheet:
    columns: dict[tuple[tuple[str, str], ...], int] = {}
    shots: dict[str, dict[int, list[int]]] = {}
    for index in indexes:
        row = report.rows[index]
        column = columns.setdefault(row.combination, len(columns))
        shots.setdefault(row.shot, {}).setdefault(column, []).append(index)
    return Sheet(
        axes=axes,
        columns=tuple(Column(values) for values in columns),
        rows=tuple(
            SheetRow(shot, tuple(tuple(cells.get(c, ())) for c in range(len(columns))))
            for shot, cells in shots.items()
        ),
    )


def report_html(report: Report) -> str:
    """The HTML document for ``report``."""
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report,
        totals=report.totals,
        sheets=contact_sheets(report),
        states=[s for s in STATES if report.totals.by_state.get(s)],
        style=Markup(palette_css() + _asset("report.css")),  # our own static files, never user data
        script=Markup(_asset("report.js")),
    )


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("seedance_batch.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(usd=usd, duration=duration, state_word=state_word, tone=_tone, ratio=_css_ratio, when=when)
    env.globals.update(span=span)
    env.globals.update(short_prompt=_short_prompt)
    return env


def palette_css() -> str:
    """The colours every page of ours shares (report.html, the review): each state's tone, light and dark."""
    return _asset("palette.css")


@cache
def _asset(name: str) -> str:
    return (files("seedance_batch.report") / "templates" / name).read_text(encoding="utf-8")


def _tone(row_or_state: ReportRow | str) -> str:
    if isinstance(row_or_state, ReportRow):
        if row_or_state.state == "done" and not row_or_state.href:
            return "warn"  # the ledger says downloaded, the file is not there
        row_or_state = row_or_state.state
    return _TONE.get(row_or_state, "idle")


def _css_ratio(ratio: str | None) -> str:
    """``16:9`` -> ``16 / 9`` for CSS ``aspect-ratio``; 16 / 9 when unset or odd."""
    match = _RATIO.match(ratio or "")
    return f"{match.group(1)} / {match.group(2)}" if match else "16 / 9"


def _short_prompt(row: ReportRow, limit: int = 90) -> str:
    """The prompt's first line, cut at a word near ``limit`` characters."""
    text = " ".join(row.prompt.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"
