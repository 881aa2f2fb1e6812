"""The SQL of the review's decisions: the current one per job, and their append-only history.

Plain functions over a connection; the backend runs :func:`write_change` inside one of
its transactions (``BEGIN IMMEDIATE``), so the read of the current decision, the
unpicking of the combination's other take and the new lines are one step: of two
reviewers picking two takes of one combination at once, the later one's pick is the one
that stands, and the database's partial unique index (``decisions_one_pick``) refuses
two picks whatever happens. Rows are read back checked, as every ledger row is:
outside data, perhaps written by another version.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

from ...errors import LedgerError, Location
from ..decisions import Decision, DecisionChange, Verdict, changed_decisions
from ..transitions import shown
from .rows import BAD_ROW_HINT

__all__ = ["read_current", "read_history", "write_change"]

_COLUMNS = ("campaign", "key", "label", "combination", "verdict", "picked", "note", "reviewer", "at")
_LIST = ", ".join(_COLUMNS)
_VERDICTS = {verdict.value: verdict for verdict in Verdict}


def read_current(db: sqlite3.Connection, campaign: str, where: Location) -> list[Decision]:
    """The campaign's current decisions, in the order their jobs were first decided."""
    return [_to_decision(row, where) for row in _rows(db, "decisions", "rowid", campaign)]


def read_history(db: sqlite3.Connection, campaign: str, where: Location) -> list[Decision]:
    """Every decision written for the campaign, in the order it was committed."""
    return [_to_decision(row, where) for row in _rows(db, "decision_history", "id", campaign)]


def _rows(db: sqlite3.Connection, table: str, order: str, campaign: str) -> list[tuple[Any, ...]]:
    try:
        return db.execute(f"SELECT {_LIST} FROM {table} WHERE campaign = ? ORDER BY {order}", (campaign,)).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a ledger from before the review, opened only to look: none yet
            return []
        raise


def write_change(db: sqlite3.Connection, change: DecisionChange, *, campaign: str, key: str, label: str,
                 combination: str, reviewer: str, at: str, where: Location) -> list[Decision]:
    """Apply ``change`` to the job's decision inside ``db``'s transaction; the decisions it changed.

    The job's own comes first, then any take of its combination it unpicked. A change
    that changes nothing (approving an approved take) writes nothing and returns the
    decision as it stands.
    """
    row = db.execute(f"SELECT {_LIST} FROM decisions WHERE campaign = ? AND key = ?", (campaign, key)).fetchone()
    current = _to_decision(row, where) if row else None

    def picked_others() -> list[Decision]:
        rows = db.execute(f"SELECT {_LIST} FROM decisions WHERE campaign = ? AND combination = ? AND picked = 1 "
                          "AND key <> ?", (campaign, combination, key)).fetchall()
        return [_to_decision(other, where) for other in rows]

    changed = changed_decisions(current, change, campaign=campaign, key=key, label=label, combination=combination,
                                reviewer=reviewer, at=at, picked_others=picked_others)
    if changed is None:
        return [current] if current is not None else []
    for decision in (*changed[1:], changed[0]):  # the unpicked first: one pick per combination at every statement
        _store(db, decision)
    return changed


def _store(db: sqlite3.Connection, decision: Decision) -> None:
    """One line of the history, and the job's current decision, in ``db``'s transaction."""
    values = (decision.campaign, decision.key, decision.label, decision.combination, decision.verdict.value,
              int(decision.picked), decision.note, decision.reviewer, decision.at)
    marks = ", ".join("?" * len(_COLUMNS))
    db.execute(f"INSERT INTO decision_history ({_LIST}) VALUES ({marks})", values)
    updates = ", ".join(f"{name} = excluded.{name}" for name in _COLUMNS[2:])
    db.execute(f"INSERT INTO decisions ({_LIST}) VALUES ({marks}) ON CONFLICT (campaign, key) DO UPDATE SET {updates}",
               values)


def _to_decision(row: tuple[Any, ...], where: Location) -> Decision:
    """A ``decisions`` or ``decision_history`` row as a record; one this version cannot read is a LedgerError."""
    values = dict(zip(_COLUMNS, row, strict=True))
    problem = _problem(values)
    if problem:
        name = values["label"] if isinstance(values["label"], str) and values["label"] else values["key"]
        raise LedgerError(f"cannot read this take's decision: {problem}", location=replace(where, job=shown(name)),
                          hint=BAD_ROW_HINT)
    return Decision(campaign=values["campaign"], key=values["key"], label=values["label"],
                    combination=values["combination"], verdict=_VERDICTS[values["verdict"]],
                    picked=bool(values["picked"]), note=values["note"], reviewer=values["reviewer"], at=values["at"])


def _problem(values: dict[str, Any]) -> str | None:
    """What makes a decision row unreadable, in words; None when it is as this version writes it."""
    for name in _COLUMNS:
        if name != "picked" and not isinstance(values[name], str):
            return f"{name} is {shown(values[name])}, not text"
    if values["verdict"] not in _VERDICTS:
        return f"verdict {shown(values['verdict'])} is not one this version knows"
    if type(values["picked"]) is not int or values["picked"] not in (0, 1):
        return f"picked is {shown(values['picked'])}, not 0 or 1"
    return None
