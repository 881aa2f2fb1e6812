"""How numbers read in the human reports (HTML, Markdown); the same words in both."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from ..ledger import VOCABULARY
from ..times import parse_time

__all__ = ["PROBLEM_REASONS", "duration", "span", "state_word", "usd", "when"]

# The user's words for a state, where the ledger's word alone would puzzle a reader.
_STATE_WORDS = {state: info.word for state, info in VOCABULARY.items()}

# Why a problem state is a problem, when the service gave no message of its own.
PROBLEM_REASONS = {state: info.problem for state, info in VOCABULARY.items() if info.problem}


def usd(value: Decimal | None) -> str:
    """``$1,234.56``; an em dash when there is no figure (no budget)."""
    return "—" if value is None else f"${value:,.2f}"


def duration(seconds: float | None) -> str:
    """``1 h 02 min``, ``3 min 05 s``, ``42 s``; empty when unknown."""
    if seconds is None:
        return ""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def state_word(state: str) -> str:
    """A state as a reader says it (``timed_out`` -> ``timed out``)."""
    return _STATE_WORDS.get(state, state.replace("_", " "))


def when(stamp: str | None) -> str:
    """``2026-04-19T10:00:05Z`` -> ``2026-04-19 10:00:05 UTC``; unparsable text unchanged."""
    moment = _utc(stamp)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else (stamp or "")


def span(start: str | None, end: str | None) -> str:
    """A run's bounds in few words: the date once when both ends share it."""
    first, last = _utc(start), _utc(end)
    if first is None:
        return ""
    if last is None:
        return f"{when(start)} → …"
    if first.date() == last.date():
        return f"{first:%Y-%m-%d}, {first:%H:%M:%S} → {last:%H:%M:%S} UTC"
    return f"{when(start)} → {when(end)}"


def _utc(stamp: str | None) -> datetime | None:
    moment = parse_time(stamp or None)
    return moment.astimezone(timezone.utc) if moment else None
