"""The SQLite side of refunds (:mod:`..refunds`): ``refunded`` lines of the audit trail, read onto records.

No table of their own: a refund is an event of kind ``refunded`` whose ``task_id`` is the
task refunded and whose detail holds the credits and dollars. Reading joins the events to
the job rows holding that task (the ``events_kind`` index makes it a range of the index),
the latest line per job winning.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

from ..refunds import REFUNDED, Refund, refund_of

__all__ = ["ROW_PRICE", "price_of", "read_refunds", "recorded_refund"]

_READ = f"""SELECT e.key, e.task_id, e.detail FROM events AS e
            JOIN jobs AS j ON j.campaign = e.campaign AND j.key = e.key AND j.task_id = e.task_id
            WHERE e.kind = '{REFUNDED}' AND """
# What a refund is worked out from: the row's state, label, task and price.
ROW_PRICE = "SELECT state, label, task_id, credits, cost_usd FROM jobs WHERE campaign = ? AND key = ?"


def read_refunds(db: sqlite3.Connection, campaign: str, *, key: str | None = None,
                 task_id: str | None = None) -> dict[str, Refund]:
    """The refunds of the rows' own tasks in ``campaign`` (or of one job, or of one task), by job key."""
    where, params = "e.campaign = ?", [campaign]
    if key is not None:
        where, params = where + " AND e.key = ?", [*params, key]
    if task_id is not None:
        where, params = where + " AND e.task_id = ?", [*params, task_id]
    found: dict[str, Refund] = {}
    for row_key, row_task, detail in db.execute(f"{_READ}{where} ORDER BY e.id", params):
        refund = refund_of(row_key, row_task, _json(detail))
        if refund is not None:
            found[refund.key] = refund  # the latest line wins
    return found


def recorded_refund(db: sqlite3.Connection, campaign: str, key: str, task_id: str) -> int | None:
    """The credits last recorded as refunded for this job's ``task_id``; None when none are."""
    refund = read_refunds(db, campaign, key=key).get(key)
    return refund.credits if refund is not None and refund.task_id == task_id else None


def price_of(cost: object) -> Decimal:
    """The row's ``cost_usd`` as an amount (rows are checked on every read; a bad one counts as 0 here)."""
    try:
        return Decimal(str(cost))
    except ArithmeticError:
        return Decimal(0)


def _json(text: object) -> object:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
