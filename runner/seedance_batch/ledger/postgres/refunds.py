"""The PostgreSQL side of refunds (:mod:`..refunds`): ``refunded`` lines of the audit trail, read onto records.

As in the SQLite backend, a refund has no table of its own: it is an event of kind
``refunded`` whose ``task_id`` is the task refunded; reading joins the events to the
job rows holding that task, the latest line per job winning. Writing one locks the
job's row for its transaction (``FOR UPDATE``), so two runners told of one refund at
once write it once: the second finds the first's line and has a repeat.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ...errors import Location
from ...times import now_iso
from ..refunds import REFUNDED, Refund, judge_refund, refund_detail, refund_of, refund_usd
from ..sqlite.rows import BadRow, state_of, unreadable
from .connection import Connection
from .schema import Names
from .statements import detail_json

__all__ = ["read_refunds", "write_refund"]


def read_refunds(db: Connection, names: Names, campaign: str, *, key: str | None = None) -> dict[str, Refund]:
    """The refunds of the rows' own tasks in ``campaign`` (or of one job), by job key."""
    sql = (f"SELECT e.key, e.task_id, e.detail FROM {names.events} AS e JOIN {names.jobs} AS j "
           "ON j.campaign = e.campaign AND j.key = e.key AND j.task_id = e.task_id "
           f"WHERE e.kind = '{REFUNDED}' AND e.campaign = %s")
    params: list[Any] = [campaign]
    if key is not None:
        sql, params = sql + " AND e.key = %s", [*params, key]
    found: dict[str, Refund] = {}
    for row_key, row_task, detail in db.execute(sql + " ORDER BY e.id", params).fetchall():
        refund = refund_of(row_key, row_task, _json(detail))
        if refund is not None:
            found[refund.key] = refund  # the latest line wins
    return found


def write_refund(db: Connection, names: Names, event_sql: str, *, campaign: str, key: str, task_id: str,
                 credits: int, source: str, where: Location) -> bool:
    """One ``refunded`` line for the failed job's ``task_id``, in one transaction; False for a repeat.

    ``event_sql``: the backend's statement appending one line (:attr:`.statements.Sql.event`).
    """
    with db.transaction():
        row = db.execute(f"SELECT state, label, task_id, credits, cost_usd FROM {names.jobs} "
                         "WHERE campaign = %s AND key = %s FOR UPDATE", (campaign, key)).fetchone()
        raw, label, held, row_credits, cost = row if row is not None else (None, "", None, 0, Decimal(0))
        try:
            state = state_of(raw) if row is not None else None
        except BadRow as bad:
            raise unreadable(label, key, bad, where) from None
        given = min(credits, row_credits) if isinstance(credits, int) and credits > 0 else credits
        recorded = read_refunds(db, names, campaign, key=key).get(key)
        verdict = judge_refund(state, held, task_id, given,
                               recorded.credits if recorded is not None and recorded.task_id == task_id else None,
                               where=where, campaign=campaign, key=key, label=label)
        if verdict == "repeat":
            return False
        detail = refund_detail(given, refund_usd(Decimal(cost), row_credits, given), source)
        db.execute(event_sql, (campaign, key, label, now_iso(), REFUNDED, raw, task_id, detail_json(detail)))
    return True


def _json(text: object) -> object:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
