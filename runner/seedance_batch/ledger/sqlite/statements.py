"""The SQL of the ledger's writes: each transition as one guarded statement, and the audit trail's line.

A transition moves a row only from the states :data:`~..transitions.TRANSITIONS` names,
checked by the statement itself (``WHERE state IN (...)``), so two processes can never
both make one move. Plain functions from a transition to SQL text and its parameters;
the backend runs them inside its transactions.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from ...errors import LedgerError, Location
from ..records import JobState
from ..transitions import Transition
from .rows import RETURNED, BadRow, state_of, unreadable

__all__ = ["RECOVER", "RowNow", "append_event", "claim", "guarded_update", "row_now"]

# A claim of a job for a submit: a new row, or one of the claimable states made submitting again.
# A claimed row keeps its created_at, request (the same key is the same request) and place.
_CLAIM = """INSERT INTO jobs (campaign, key, label, shot, request, state, attempts, credits, cost_usd,
                output_path, created_at, submitting_at, updated_at)
            VALUES (?, ?, ?, ?, ?, 'submitting', 1, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (campaign, key) DO UPDATE SET
                label = excluded.label, shot = excluded.shot, state = 'submitting',
                attempts = attempts + 1, credits = excluded.credits, cost_usd = excluded.cost_usd,
                output_path = excluded.output_path, task_id = NULL, api_status = NULL,
                error_class = NULL, error_message = NULL, file_url = NULL,
                submitting_at = excluded.submitting_at, updated_at = excluded.updated_at
            WHERE jobs.state IN ({claimable})
            RETURNING {returned}"""

# Every row a dead run left submitting becomes unknown (with its rowid, to keep the rows' order).
RECOVER = f"""UPDATE jobs SET state = ?, error_class = 'ambiguous_submit', error_message = ?, updated_at = ?
              WHERE state = ? RETURNING rowid, {RETURNED}"""


def claim(transition: Transition, resubmit: Collection[JobState]) -> tuple[str, tuple[str, ...]]:
    """The claim statement for ``begin_submit`` and the states it claims (its last parameters)."""
    claimable = tuple(sorted({s.value for s in transition.sources if s is not None} | {s.value for s in resubmit}))
    return _claim_sql(len(claimable)), claimable


@cache
def _claim_sql(states: int) -> str:
    return _CLAIM.format(claimable=", ".join("?" * states), returned=RETURNED)


def guarded_update(transition: Transition, campaign: str, key: str, fields: Mapping[str, Any],
                   value: str | None) -> tuple[str, list[Any]]:
    """``UPDATE`` one job's row to ``transition.to`` from its sources only, returning its label and task id.

    With ``transition.same`` set, a row in a repeat state already holding ``value`` is left alone.
    """
    sources = [s.value for s in transition.sources if s is not None]
    guard = f"state IN ({', '.join('?' * len(sources))})"
    params: list[Any] = [*fields.values(), campaign, key, *sources]
    if transition.same is not None:
        repeats = [s.value for s in transition.repeats]
        guard += f" AND NOT (state IN ({', '.join('?' * len(repeats))}) AND {transition.same} IS ?)"
        params += [*repeats, value]
    assignments = ", ".join(f"{name} = ?" for name in fields)
    return (f"UPDATE jobs SET {assignments} WHERE campaign = ? AND key = ? AND {guard} RETURNING label, task_id",
            params)


@dataclass(frozen=True, slots=True)
class RowNow:
    """What a write needs to know of a job's row: its state (None: no row) and a few columns.

    ``problem`` is set when the row's state is one this version cannot read.
    """

    state: JobState | None
    raw_state: object
    label: str
    task_id: str | None
    api_status: str | None
    problem: LedgerError | None = None


def row_now(db: sqlite3.Connection, campaign: str, key: str, where: Location) -> RowNow:
    """The job's row as it is now, inside ``db``'s transaction."""
    row = db.execute("SELECT state, label, task_id, api_status FROM jobs WHERE campaign = ? AND key = ?",
                     (campaign, key)).fetchone()
    if row is None:
        return RowNow(None, None, "", None, None)
    raw, label, task_id, api_status = row
    label = label if isinstance(label, str) else str(label)
    try:
        return RowNow(state_of(raw), raw, label, task_id, api_status)
    except BadRow as bad:
        return RowNow(None, raw, label, task_id, api_status, unreadable(label, key, bad, where))


def append_event(db: sqlite3.Connection, campaign: str, key: str, label: str, kind: str,
                 state: JobState | None, task_id: str | None, detail: Mapping[str, Any], at: str) -> None:
    """One line of the audit trail, in ``db``'s transaction."""
    db.execute(
        "INSERT INTO events (campaign, key, label, at, kind, state, task_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (campaign, key, label, at, kind, state.value if state else None, task_id,
         json.dumps(detail, separators=(",", ":"), default=str)),
    )
