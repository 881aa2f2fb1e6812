"""The review's decisions, as every backend stores them: verdicts, picks and notes per take.

A reviewer's keypress is a :class:`DecisionChange` (approve, reject, clear, pick,
unpick, a note) on one job of a campaign; the ledger applies it in one transaction,
appending the resulting :class:`Decision` to the campaign's decision history (never
rewritten) and making it that job's current decision. The rules of what a change
means are one pure function, :func:`apply_change`, which every backend calls:

- picking a take approves it; rejecting or clearing a take drops its pick;
- at most one take per *combination* is picked: picking one unpicks the others
  (``combination`` is the review's identity of a shot's combination without its take
  number, see :mod:`seedance_batch.review.takes`), in the same transaction, and each
  unpicked take gets its own history line naming who unpicked it.

Decisions are keyed by the job key, so a changed prompt or parameter (a new key)
starts undecided, as a new render should.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import Enum

__all__ = [
    "MAX_NOTE_CHARS", "MAX_REVIEWER_CHARS", "Decision", "DecisionChange", "Verdict", "apply_change",
    "changed_decisions", "check_reviewer", "decision_json", "unpicked",
]

# A note is a sentence or two ("too dark at 0:03, try a warmer grade"); 2,000 characters is
# a paragraph, and keeps a page of a hundred takes light.
MAX_NOTE_CHARS = 2000
# A name or an e-mail address.
MAX_REVIEWER_CHARS = 80


class Verdict(str, Enum):
    """What a reviewer said of a take."""

    UNDECIDED = "undecided"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class DecisionChange:
    """What one reviewer action changes; None leaves that part as it is.

    Raises ValueError for a note that is not one a reviewer could have typed
    (too long, or holding a control, bidirectional or invisible character; newlines,
    tabs and spaces of any kind are fine).
    """

    verdict: Verdict | None = None
    picked: bool | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        if self.verdict is not None and not isinstance(self.verdict, Verdict):
            raise ValueError(f"a verdict is one of {', '.join(v.value for v in Verdict)}")
        if self.note is not None:
            _check_note(self.note)


@dataclass(frozen=True, slots=True)
class Decision:
    """One job's decision: as it stands now, or as one line of the history recorded it.

    ``reviewer`` and ``at`` (ISO 8601 UTC) are who made the last change, and when.
    """

    campaign: str
    key: str
    label: str
    combination: str
    verdict: Verdict = Verdict.UNDECIDED
    picked: bool = False
    note: str = ""
    reviewer: str = ""
    at: str = ""


def apply_change(current: Decision | None, change: DecisionChange, *, campaign: str, key: str, label: str,
                 combination: str, reviewer: str, at: str) -> Decision:
    """The job's decision after ``change`` (``current``: its decision before, None when it had none)."""
    verdict = current.verdict if current else Verdict.UNDECIDED
    picked = current.picked if current else False
    note = current.note if current else ""
    if change.verdict is not None:
        verdict = change.verdict
        if verdict is not Verdict.APPROVED:
            picked = False  # a rejected or undecided take is nobody's pick
    if change.picked is not None:
        picked = change.picked
        if picked:
            verdict = Verdict.APPROVED  # the pick is the take to promote: approved by picking it
    if change.note is not None:
        note = change.note
    return Decision(campaign=campaign, key=key, label=label, combination=combination, verdict=verdict,
                    picked=picked, note=note, reviewer=reviewer, at=at)


def changed_decisions(current: Decision | None, change: DecisionChange, *, campaign: str, key: str, label: str,
                      combination: str, reviewer: str, at: str,
                      picked_others: Callable[[], Iterable[Decision]]) -> list[Decision] | None:
    """What ``change`` makes of the job's decision, every backend alike: the job's new decision first, then
    each other take of its combination it unpicked (``picked_others``: those picked now, asked only when
    this one is picked). None when it changes nothing (approving an approved take): nothing to write."""
    new = apply_change(current, change, campaign=campaign, key=key, label=label, combination=combination,
                       reviewer=reviewer, at=at)
    if current is not None and replace(current, reviewer="", at="") == replace(new, reviewer="", at=""):
        return None
    return [new, *(unpicked(other, reviewer=reviewer, at=at) for other in (picked_others() if new.picked else ()))]


def unpicked(other: Decision, *, reviewer: str, at: str) -> Decision:
    """Another take of ``other``'s combination was picked: ``other`` keeps its verdict, loses the pick."""
    return Decision(campaign=other.campaign, key=other.key, label=other.label, combination=other.combination,
                    verdict=other.verdict, picked=False, note=other.note, reviewer=reviewer, at=at)


def decision_json(decision: Decision) -> dict[str, object]:
    """A decision as JSON shows it (the review page, ``status --json``)."""
    return {"key": decision.key, "verdict": decision.verdict.value, "picked": decision.picked,
            "note": decision.note, "reviewer": decision.reviewer, "at": decision.at}


def check_reviewer(name: str) -> str:
    """``name`` as a reviewer's name; ValueError says what is wrong with it."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a reviewer's name cannot be empty")
    if len(name) > MAX_REVIEWER_CHARS:
        raise ValueError(f"a reviewer's name is at most {MAX_REVIEWER_CHARS} characters")
    if not name.isprintable():
        raise ValueError("a reviewer's name is one line of printable characters")
    return name.strip()


def _check_note(note: str) -> None:
    if not isinstance(note, str):
        raise ValueError("a note is text")
    if len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"a note is at most {MAX_NOTE_CHARS} characters (this one has {len(note)})")
    if not all(ch.isprintable() or ch in "\n\t" or unicodedata.category(ch) == "Zs" for ch in note):
        # control, bidirectional and invisible characters: what would make a note lie on screen
        raise ValueError("a note holds only printable characters, spaces, newlines and tabs")
