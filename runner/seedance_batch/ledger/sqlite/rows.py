"""SQLite rows as records: every value checked, so a row this version cannot read is one error.

A ledger file is outside data (an older or newer version, a hand edit, another tool may
have written it). Each ``jobs`` row is read with an SQL test of its columns' kinds, so
SQLite checks 100,000 rows in C; only a row that fails it is looked at closely in Python,
to say which column is wrong. The values that need converting (the state, the request's
JSON, the decimal cost) are converted for every row, the fastest way found.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from ...errors import LedgerError, Location
from ..records import Event, JobRecord, JobState
from ..transitions import shown

__all__ = [
    "BAD_ROW_HINT", "COLUMNS", "EVENT_SELECT", "RETURNED", "SELECT", "BadRow", "state_of", "to_event", "to_record",
    "unreadable",
]

# In JobRecord's field order: a row becomes JobRecord(*values) (the fastest way for 100,000 rows).
COLUMNS = (
    "campaign", "key", "label", "shot", "request", "state", "task_id", "api_status", "attempts",
    "credits", "cost_usd", "error_class", "error_message", "file_url", "output_path", "size",
    "sha256", "created_at", "submitted_at", "finished_at", "downloaded_at", "updated_at",
)
# What each column holds when read back: text or a count (an integer, never negative),
# and whether it may be NULL. Anything else was not written by this version.
_TEXT_COLUMNS: Mapping[str, bool] = {
    "campaign": False, "key": False, "label": False, "shot": False, "request": False, "state": False,
    "cost_usd": False, "task_id": True, "api_status": True, "error_class": True, "error_message": True,
    "file_url": True, "output_path": True, "sha256": True, "created_at": True, "submitted_at": True,
    "finished_at": True, "downloaded_at": True, "updated_at": True,
}
_COUNT_COLUMNS: Mapping[str, bool] = {"attempts": False, "credits": False, "size": True}


def _well_typed() -> str:
    """An SQL test of every column's kind, so SQLite checks 100,000 rows in C, not Python per field."""
    tests = []
    for name, nullable in _TEXT_COLUMNS.items():
        tests.append(f"typeof({name}) IN ('text', 'null')" if nullable else f"typeof({name}) = 'text'")
    for name, nullable in _COUNT_COLUMNS.items():
        test = f"(typeof({name}) = 'integer' AND {name} >= 0)"
        tests.append(f"({test} OR {name} IS NULL)" if nullable else test)
    return " AND ".join(tests)


# What a statement selects (or returns) to make records: the columns, then whether the
# row's kinds are all as written (1), else the row is looked at closely.
RETURNED = f"{', '.join(COLUMNS)}, ({_well_typed()})"
SELECT = f"SELECT {RETURNED} FROM jobs"
_AT = {name: index for index, name in enumerate(COLUMNS)}
_STATES = {state.value: state for state in JobState}
BAD_ROW_HINT = ("upgrade seedance-batch if a newer version wrote it, or repair or remove that row "
                "(nothing was changed)")


class BadRow(ValueError):
    """What makes a ledger row unreadable, in words (becomes a LedgerError naming the ledger)."""


def to_record(row: tuple[Any, ...], where: Location) -> JobRecord:
    """A ``jobs`` row (from :data:`SELECT`) as a record; one this version cannot read is a :class:`LedgerError`."""
    try:
        return JobRecord(*_decoded(row))
    except BadRow as bad:
        raise unreadable(row[_AT["label"]], row[_AT["key"]], bad, where) from None


def unreadable(label: object, key: object, bad: BadRow, where: Location) -> LedgerError:
    """The error for a ``jobs`` row this version cannot read, naming its job (by label, else key)."""
    name = label if isinstance(label, str) and label else key
    return LedgerError(f"cannot read this job's row: {bad}", location=replace(where, job=shown(name)),
                       hint=BAD_ROW_HINT)


def state_of(value: object) -> JobState:
    """A row's ``state`` column as a :class:`JobState`; :class:`BadRow` for a word this version does not know."""
    state = _STATES.get(value) if isinstance(value, str) else None
    if state is None:
        raise BadRow(f"state {shown(value)} is not one this version knows")
    return state


def _decoded(row: tuple[Any, ...]) -> list[Any]:
    """A row's values, checked and converted, in JobRecord's field order; :class:`BadRow` says what is wrong.

    The row's last column is :func:`_well_typed`: when SQLite found every kind right, only
    the values that need converting are looked at here (this runs for every row read).
    """
    values = list(row[:-1])
    if not row[-1]:
        _check_kinds(dict(zip(COLUMNS, values, strict=True)))
    state = values[_AT["state"]]  # text by now: the kinds are checked
    values[_AT["state"]] = _STATES.get(state) or state_of(state)  # state_of says why it is unreadable
    values[_AT["request"]] = request = _json_object(values[_AT["request"]])
    if not isinstance(request, dict):
        raise BadRow("its request is not a JSON object")
    cost = values[_AT["cost_usd"]]
    try:
        values[_AT["cost_usd"]] = amount = Decimal(cost)
    except InvalidOperation:
        raise BadRow(f"cost_usd {shown(cost)} is not a decimal amount") from None
    if not amount.is_finite() or amount < 0:
        raise BadRow(f"cost_usd {shown(cost)} is not an amount of money")
    return values


def _json_object(text: str) -> Any:
    """``json.loads(text)``, by orjson (4x faster) where it can: what it refuses (an integer past
    64 bits, NaN) the json module reads as this ledger's writer (``json.dumps``) meant it."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text)
    except ValueError:
        raise BadRow("its request is not valid JSON") from None


def _check_kinds(values: Mapping[str, Any]) -> None:
    """Say which column of a row holds something of the wrong kind (:func:`_well_typed` found one)."""
    for name, nullable in _TEXT_COLUMNS.items():
        value = values[name]
        if not (isinstance(value, str) or (nullable and value is None)):
            raise BadRow(f"{name} is {shown(value)}, not text")
    for name, nullable in _COUNT_COLUMNS.items():
        value = values[name]
        # a negative count or size is as unreadable as a word: it would bend the budget
        if not ((isinstance(value, int) and value >= 0) or (nullable and value is None)):
            raise BadRow(f"{name} is {shown(value)}, not a count")


EVENT_SELECT = "SELECT id, campaign, key, label, at, kind, state, task_id, detail FROM events"


def to_event(row: tuple[Any, ...], where: Location) -> Event:
    """An ``events`` row as an :class:`Event`; one this version cannot read is a :class:`LedgerError`."""
    try:
        detail = json.loads(row[8]) if isinstance(row[8], str) else None
    except ValueError:
        detail = None
    if not isinstance(detail, dict) or not all(isinstance(v, str) or v is None for v in row[1:8]):
        raise LedgerError(f"cannot read event {shown(row[0])} of the audit trail (not the shape this version "
                          "writes)", location=where, hint=BAD_ROW_HINT)
    event_id, campaign, key, label, at, kind, state, task_id = row[:8]
    return Event(event_id, campaign, key, label, at, kind, state, task_id, detail=detail)
