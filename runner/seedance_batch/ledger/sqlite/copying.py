"""The SQLite side of ``ledger copy``: which campaigns a file holds, and a campaign's history written in.

The rules are the backend-neutral ones (:func:`..copying.plan_copy`); the backend runs
:func:`copy_in` inside one of its write transactions (``BEGIN IMMEDIATE``), so what is
compared cannot change before what is missing is written. Rows are stored exactly as
this backend's own writes store them (the request as canonical JSON, money as a
decimal string), so a copied row reads back equal to its source.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from ...errors import Location
from ..copying import CopyCounts, plan_copy, record_values
from ..records import Event, JobRecord
from .rows import COLUMNS, EVENT_SELECT, SELECT, to_event, to_record

__all__ = ["campaigns", "copy_in"]

_INSERT = (f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
           "ON CONFLICT (campaign, key) DO NOTHING")
# A copied event gets this file's next id, in the copy's order (ids are each ledger's own).
_EVENT = "INSERT INTO events (campaign, key, label, at, kind, state, task_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def campaigns(db: sqlite3.Connection) -> list[str]:
    """Every campaign with a job's row or an event in this file, by name."""
    rows = db.execute("SELECT campaign FROM jobs UNION SELECT campaign FROM events ORDER BY 1").fetchall()
    return [str(row[0]) for row in rows]


def copy_in(db: sqlite3.Connection, campaign: str, records: Sequence[JobRecord], events: Sequence[Event],
            where: Location) -> CopyCounts:
    """Write the rows and events of ``campaign`` this file lacks, in ``db``'s transaction (see the Protocol)."""
    here = [to_record(row, where) for row in db.execute(f"{SELECT} WHERE campaign = ? ORDER BY rowid", (campaign,))]
    trail = [to_event(row, where) for row in db.execute(f"{EVENT_SELECT} WHERE campaign = ? ORDER BY id",
                                                        (campaign,))]
    plan = plan_copy(campaign, records, events, here, trail, where)
    rows = []
    for rec in plan.records:
        values = record_values(rec)
        values["cost_usd"] = str(rec.cost_usd)  # as begin_submit stores it: a decimal string, never a float
        rows.append(tuple(values[name] for name in COLUMNS))
    db.executemany(_INSERT, rows)
    db.executemany(_EVENT, [(e.campaign, e.key, e.label, e.at, e.kind, e.state, e.task_id,
                             json.dumps(e.detail, separators=(",", ":"), default=str)) for e in plan.events])
    return plan.counts
