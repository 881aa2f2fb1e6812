"""The SQL of the PostgreSQL ledger: each write one statement, its audit line in the same statement.

A transition moves a job's row only from the states :data:`~..transitions.TRANSITIONS`
names, checked by the statement itself (``WHERE state = ANY(...)``): PostgreSQL makes a
second writer of the same row wait, then re-checks that condition on the row as the
first left it, so of two processes making one move exactly one does it. The audit
line is inserted by the same statement (a data-modifying ``WITH``), so a row's move
and its event commit together, in one round trip; only a write that moved nothing
reads the row (:attr:`Sql.row_now`) to say why.

Event ids are in commit order, as a cursor over them needs (``events_after``): an
identity column hands ids out when rows are inserted, so a transaction that commits
later could show a smaller id to a reader who has already moved past it. Each id
comes instead from the schema's one-row ``event_ids`` counter, updated in the
writing transaction: its row lock makes the next writer wait until this one has
committed. (Writes are single statements: the wait is a fraction of a millisecond.)

Plain text and parameters, built once per ledger for its schema (:class:`Sql`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..records import Event, JobState
from ..sqlite.rows import COLUMNS
from ..transitions import Transition
from .schema import Names

__all__ = ["Sql", "detail_json"]

_EVENT_COLUMNS = "id, campaign, key, label, at, kind, state, task_id, detail"


def detail_json(detail: Mapping[str, Any]) -> str:
    """An event's detail as the text both backends store (compact JSON)."""
    return json.dumps(detail, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Sql:
    """Every statement of one ledger, for its schema."""

    names: Names

    @property
    def select(self) -> str:
        return f"SELECT {', '.join(COLUMNS)} FROM {self.names.jobs}"

    @property
    def select_events(self) -> str:
        return f"SELECT {_EVENT_COLUMNS} FROM {self.names.events}"

    @property
    def campaigns(self) -> str:
        return f"SELECT campaign FROM {self.names.jobs} UNION SELECT campaign FROM {self.names.events} ORDER BY 1"

    @property
    def row_now(self) -> str:
        """What a write that moved nothing needs of the row, to say why."""
        return f"SELECT state, label, task_id, api_status FROM {self.names.jobs} WHERE campaign = %s AND key = %s"

    def _logged(self, source: str) -> str:
        """``WITH`` parts giving the one row of ``source`` the next event id and inserting its line.

        Its parameters: the event's stamp, kind and detail (in that order).
        """
        return f"""ids AS (
            UPDATE {self.names.event_ids} SET last = last + 1 WHERE EXISTS (SELECT 1 FROM {source}) RETURNING last
        ), logged AS (
            INSERT INTO {self.names.events} ({_EVENT_COLUMNS})
            SELECT ids.last, s.campaign, s.key, s.label, %s, %s, s.state, s.task_id, %s FROM {source} AS s, ids
        )"""

    def claim(self) -> str:
        """``begin_submit``: a new row, or a claimable one made submitting again, with its line; the row.

        Parameters: the 11 values, the owner (a runner's id, or None), the claimable states (a list),
        then the event's stamp, kind, detail.
        """
        return f"""WITH claimed AS (
            INSERT INTO {self.names.jobs} AS j (campaign, key, label, shot, request, state, attempts, credits,
                cost_usd, output_path, created_at, submitting_at, updated_at, owner)
            VALUES (%s, %s, %s, %s, %s, 'submitting', 1, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (campaign, key) DO UPDATE SET
                label = excluded.label, shot = excluded.shot, state = 'submitting', owner = excluded.owner,
                attempts = j.attempts + 1, credits = excluded.credits, cost_usd = excluded.cost_usd,
                output_path = excluded.output_path, task_id = NULL, api_status = NULL,
                error_class = NULL, error_message = NULL, file_url = NULL,
                submitting_at = excluded.submitting_at, updated_at = excluded.updated_at
            WHERE j.state = ANY(%s)
            RETURNING {', '.join(f'j.{c}' for c in COLUMNS)}
        ), {self._logged("claimed")}
        SELECT {', '.join(COLUMNS)} FROM claimed"""

    def move(self, transition: Transition, campaign: str, key: str, fields: Mapping[str, Any],
             value: str | None, *, only: Collection[JobState] | None = None) -> tuple[str, list[Any]]:
        """``UPDATE`` one row to ``transition.to`` from its sources (or ``only`` these), with its line.

        Returns the row's label and task id when it moved. With ``transition.same`` set, a
        row in a repeat state already holding ``value`` is left alone. The event's stamp,
        kind and detail are the statement's last three parameters: the caller appends them.
        """
        sources = [s.value for s in (only if only is not None else transition.sources) if s is not None]
        guard = "state = ANY(%s)"
        params: list[Any] = [*fields.values(), campaign, key, sources]
        if transition.same is not None:
            guard += f" AND NOT (state = ANY(%s) AND {transition.same} IS NOT DISTINCT FROM %s)"
            params += [[s.value for s in transition.repeats], value]
        assignments = ", ".join(f"{name} = %s" for name in fields)
        sql = f"""WITH moved AS (
            UPDATE {self.names.jobs} SET {assignments} WHERE campaign = %s AND key = %s AND {guard}
            RETURNING campaign, key, label, state, task_id
        ), {self._logged("moved")}
        SELECT label, task_id FROM moved"""
        return sql, params

    @property
    def event(self) -> str:
        """One line of the audit trail, given its 8 values (everything but the id)."""
        return f"""WITH ids AS (UPDATE {self.names.event_ids} SET last = last + 1 RETURNING last)
        INSERT INTO {self.names.events} ({_EVENT_COLUMNS})
        SELECT ids.last, %s, %s, %s, %s, %s, %s, %s, %s FROM ids"""

    @property
    def note(self) -> str:
        """A line on a job's row as it is (label, state, task id; none: empty), unless its state is one
        this version does not know. Parameters: campaign, key, the known states, stamp, kind, detail.
        Returns the row's label and state, and how many lines were written (0 or 1)."""
        return f"""WITH target AS (
            SELECT %s::text AS campaign, %s::text AS key, coalesce(j.label, '') AS label, j.state, j.task_id
            FROM (SELECT 1) AS one LEFT JOIN {self.names.jobs} AS j ON j.campaign = %s AND j.key = %s
        ), known AS (
            SELECT * FROM target WHERE state IS NULL OR state = ANY(%s)
        ), {self._logged("known")}
        SELECT label, state, (SELECT count(*) FROM known) FROM target"""

    @property
    def copy_job(self) -> str:
        """A copied row, as it is; nothing when the job has a row here already (compared by the caller)."""
        return (f"INSERT INTO {self.names.jobs} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
                "ON CONFLICT (campaign, key) DO NOTHING")

    @staticmethod
    def event_values(event: Event) -> tuple[Any, ...]:
        """A copied event's values for :attr:`event` (it gets a new id here, in the copy's order)."""
        return (event.campaign, event.key, event.label, event.at, event.kind, event.state, event.task_id,
                detail_json(event.detail))

    @staticmethod
    def claimable(transition: Transition, resubmit: Sequence[JobState]) -> list[str]:
        """The states ``begin_submit`` claims from: its sources, and the ones the user said to resubmit."""
        return sorted({s.value for s in transition.sources if s is not None} | {s.value for s in resubmit})
