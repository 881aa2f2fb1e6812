"""The review page: the contact sheet as HTML, and its own script and stylesheet.

Jinja2 with autoescaping on, as report.html: a prompt or a label holding ``<script>``
shows as text, in an attribute as in the page. The page carries no inline script or
style (the Content-Security-Policy allows neither): its data is in ``data-*``
attributes, its session key in a ``<meta>`` tag, its aspect ratios in classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import jinja2

from ..ledger import VOCABULARY
from ..ledger.decisions import MAX_NOTE_CHARS
from ..report.data import Report, ReportRow
from ..report.fmt import state_word, usd, when
from ..report.html import palette_css
from .sheet import ReviewSheet, Tally

__all__ = ["ASSETS", "Asset", "asset", "review_html"]


@dataclass(frozen=True, slots=True)
class Asset:
    """One of the page's own files: its bytes and type."""

    body: bytes
    media_type: str


# The files the page loads from this server, by name (nothing else is served from /static/).
ASSETS = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}
_RATIO = re.compile(r"^(\d{1,2}):(\d{1,2})$")
_RATIOS = frozenset({"21:9", "16:9", "4:3", "1:1", "3:4", "9:16"})
_TONE = {state: info.tone for state, info in VOCABULARY.items()}


def review_html(report: Report, sheets: tuple[ReviewSheet, ...], tally: Tally, *, token: str, reviewer: str,
                profile: str | None) -> str:
    """The page for ``report`` laid out as ``sheets``."""
    return _environment().get_template("review.html.j2").render(
        report=report, totals=report.totals, sheets=sheets, tally=tally, token=token, reviewer=reviewer,
        profile=profile, max_note=MAX_NOTE_CHARS,
    )


@cache
def asset(name: str) -> Asset:
    """The page's own file ``name`` (one of :data:`ASSETS`), read once."""
    body = (files("seedance_batch.review") / "templates" / name).read_bytes()
    if name == "review.css":  # after the report's palette: the same tones, one place to change them
        body = palette_css().encode("utf-8") + body
    return Asset(body, ASSETS[name])


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("seedance_batch.review", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(usd=usd, when=when, state_word=state_word, tone=_tone, ratio_class=_ratio_class)
    return env


def _tone(row: ReportRow) -> str:
    if row.state == "done" and not row.href:
        return "warn"  # the ledger says downloaded, the file is not there
    return _TONE.get(row.state, "idle")


def _ratio_class(ratio: str | None) -> str:
    """``9:16`` -> ``r-9x16`` (a class of review.css); 16:9 for an unset or unknown ratio."""
    found = _RATIO.match(ratio or "") if ratio in _RATIOS else None
    return f"r-{found.group(1)}x{found.group(2)}" if found else "r-16x9"
