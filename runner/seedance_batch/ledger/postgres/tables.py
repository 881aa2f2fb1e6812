"""The PostgreSQL ledger's other tables: callback tokens, the source media cache, the review's decisions.

Plain functions over a connection and the schema's :class:`~.schema.Names`; the backend
runs each as one call of its session. The rules are the backend-neutral ones
(:mod:`..decisions`, :mod:`..mediacache`); what is PostgreSQL's here is how a decision
stays one step while several reviewers click at once: :func:`decide` locks the
schema's ``decisions`` table for its transaction (reviewers click at human speed; the
lock is the schema's own, so another project's reviewers never wait for it), so the
read of the current decision, the unpicking of the combination's other take and the
new lines cannot interleave with another change, and the partial unique index
``decisions_one_pick`` refuses two picks in one combination whatever happens.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Any

from ...errors import LedgerError, Location
from ..decisions import Decision, DecisionChange, Verdict, changed_decisions
from ..mediacache import CachedMedia
from ..sqlite.rows import BAD_ROW_HINT
from ..transitions import shown
from .connection import Connection
from .schema import Names

__all__ = ["add_token", "callback_tokens", "decide", "decisions", "media_checks", "revoke_token",
           "save_media_checks"]

_DECISION = ("campaign", "key", "label", "combination", "verdict", "picked", "note", "reviewer", "at")
_LIST = ", ".join(_DECISION)
_VERDICTS = {verdict.value: verdict for verdict in Verdict}
_MEDIA = ("url_hash", "shown", "checked_at", "content_type", "size", "etag", "last_modified")


# --- webhook callbacks: the runs' secrets, by digest ----------------------------------------

def add_token(db: Connection, names: Names, campaign: str, digest: str, at: str) -> None:
    db.execute(f"INSERT INTO {names.table('callback_tokens')} (digest, campaign, created_at) VALUES (%s, %s, %s) "
               "ON CONFLICT (digest) DO NOTHING", (digest, campaign, at))


def revoke_token(db: Connection, names: Names, digest: str, at: str) -> None:
    db.execute(f"UPDATE {names.table('callback_tokens')} SET revoked_at = %s WHERE digest = %s "
               "AND revoked_at IS NULL", (at, digest))


def callback_tokens(db: Connection, names: Names) -> dict[str, str]:
    rows = db.execute(f"SELECT digest, campaign FROM {names.table('callback_tokens')} "
                      "WHERE revoked_at IS NULL").fetchall()
    return {str(digest): str(campaign) for digest, campaign in rows}


# --- the source media cache -----------------------------------------------------------------

def media_checks(db: Connection, names: Names, url_hashes: Collection[str]) -> dict[str, CachedMedia]:
    """The cached entries of ``url_hashes`` that exist, by hash (the columns' types are the database's)."""
    rows = db.execute(f"SELECT {', '.join(_MEDIA)} FROM {names.table('media_checks')} WHERE url_hash = ANY(%s)",
                      (sorted(set(url_hashes)),)).fetchall()
    return {row[0]: CachedMedia(*row) for row in rows}


def save_media_checks(db: Connection, names: Names, entries: Collection[CachedMedia]) -> None:
    """Insert or replace each entry, in one transaction."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in _MEDIA[1:])
    sql = (f"INSERT INTO {names.table('media_checks')} ({', '.join(_MEDIA)}) VALUES "
           f"({', '.join(['%s'] * len(_MEDIA))}) ON CONFLICT (url_hash) DO UPDATE SET {updates}")
    with db.transaction(), db.cursor() as cur:
        cur.executemany(sql, [tuple(getattr(entry, column) for column in _MEDIA) for entry in entries])


# --- the review's decisions ------------------------------------------------------------------

def decisions(db: Connection, names: Names, campaign: str, where: Location, *, history: bool) -> list[Decision]:
    """The campaign's current decisions (in the order first decided), or its whole history (as committed)."""
    table, order = ("decision_history", "id") if history else ("decisions", "seq")
    rows = db.execute(f"SELECT {_LIST} FROM {names.table(table)} WHERE campaign = %s ORDER BY {order}",
                      (campaign,)).fetchall()
    return [_to_decision(row, where) for row in rows]


def decide(db: Connection, names: Names, change: DecisionChange, *, campaign: str, key: str, label: str,
           combination: str, reviewer: str, at: str, where: Location) -> list[Decision]:
    """Apply ``change`` to the job's decision in one transaction; the decisions it changed (its own first)."""
    current_table = names.table("decisions")
    with db.transaction():
        db.execute(f"LOCK TABLE {current_table} IN SHARE ROW EXCLUSIVE MODE")
        row = db.execute(f"SELECT {_LIST} FROM {current_table} WHERE campaign = %s AND key = %s",
                         (campaign, key)).fetchone()
        current = _to_decision(row, where) if row else None

        def picked_others() -> list[Decision]:
            rows = db.execute(f"SELECT {_LIST} FROM {current_table} WHERE campaign = %s AND combination = %s "
                              "AND picked AND key <> %s ORDER BY seq", (campaign, combination, key)).fetchall()
            return [_to_decision(other, where) for other in rows]

        changed = changed_decisions(current, change, campaign=campaign, key=key, label=label, combination=combination,
                                    reviewer=reviewer, at=at, picked_others=picked_others)
        if changed is None:
            return [current] if current is not None else []
        for decision in (*changed[1:], changed[0]):  # the unpicked first: one pick per combination at every statement
            _store(db, names, decision)
    return changed


def _store(db: Connection, names: Names, decision: Decision) -> None:
    """One line of the history, and the job's current decision, in the caller's transaction."""
    values = (decision.campaign, decision.key, decision.label, decision.combination, decision.verdict.value,
              decision.picked, decision.note, decision.reviewer, decision.at)
    marks = ", ".join(["%s"] * len(_DECISION))
    db.execute(f"INSERT INTO {names.table('decision_history')} ({_LIST}) VALUES ({marks})", values)
    updates = ", ".join(f"{name} = excluded.{name}" for name in _DECISION[2:])
    db.execute(f"INSERT INTO {names.table('decisions')} ({_LIST}) VALUES ({marks}) "
               f"ON CONFLICT (campaign, key) DO UPDATE SET {updates}", values)


def _to_decision(row: tuple[Any, ...], where: Location) -> Decision:
    """A decision row as a record; a verdict this version does not know is one LedgerError naming the take."""
    values = dict(zip(_DECISION, row, strict=True))
    verdict = _VERDICTS.get(values["verdict"])
    if verdict is None:
        name = values["label"] or values["key"]
        raise LedgerError(f"cannot read this take's decision: verdict {shown(values['verdict'])} is not one this "
                          "version knows", location=replace(where, job=shown(name)), hint=BAD_ROW_HINT)
    return Decision(campaign=values["campaign"], key=values["key"], label=values["label"],
                    combination=values["combination"], verdict=verdict, picked=bool(values["picked"]),
                    note=values["note"], reviewer=values["reviewer"], at=values["at"])
