"""The PostgreSQL ledger's runner operations: leases on the database's clock, takeover, limited
claims, the account's submit schedule (what they promise: :mod:`..claims`).

A part of :class:`~.backend.PostgresLedger`, kept apart by meaning. Every lease is a row of
the ``runners`` table measured against ``now()``: nothing is tied to a session, so a
connection pooler in transaction mode (PgBouncer) and a runner's wrong clock change nothing.

- A takeover is one statement: the orphaned rows are locked ``FOR UPDATE SKIP LOCKED``
  (two runners taking over at once split them), moved, and the ``submitting`` ones'
  ``recovered`` lines inserted, all together.
- A claim with limits is one short transaction: it locks the ``limits`` row ``claims``
  (every limited claim of the ledger waits for the one before it to commit), then the
  claim statement reads the campaign's committed spending and the account's in-flight
  rows in its own snapshot, taken after the lock, so it sees every claim before it.
  Over a limit, the transaction is rolled back: nothing was written.
- A submit slot is one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` on the schedule's
  row: the row lock orders the runners, the database's clock places the slot.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from typing import Any

import psycopg

from ...errors import LedgerError, Location
from ...times import now_iso
from ..claims import (
    CHARGED_SQL,
    HELD,
    IN_FLIGHT_LIMITED,
    SUBMIT_SCOPE,
    Claim,
    ClaimLimited,
    ClaimTerms,
    TakenOver,
    account_busy,
    check_lease,
    over_budget,
)
from ..records import JobRecord, JobState
from ..sqlite.rows import COLUMNS
from ..transitions import TRANSITIONS, resubmit_states
from .connection import Connection
from .rows import to_record
from .schema import Names
from .session import Session
from .statements import Sql

__all__ = ["RECOVERED", "PostgresRunners", "limited_claim", "limits_verdict"]

RECOVERED = "the run stopped during this job's submit; it may have reached the service"
_TRACKED = [state.value for state in JobState if state.in_flight]
_LIMITED = [state.value for state in IN_FLIGHT_LIMITED]
_CLOCK = "extract(epoch FROM clock_timestamp())"
# How often a claim that moved nothing looks again, when the row changed under it (as the backend's writes).
_RACES = 5


def _alive(names: Names) -> str:
    """A condition on a jobs row ``j``: its owner holds a lease past now."""
    return f"EXISTS (SELECT 1 FROM {names.table('runners')} r WHERE r.id = j.owner AND r.lease_until > now())"


def _made_unknown(names: Names, where: str) -> str:
    """A statement making the ``submitting`` rows ``j`` matching ``where`` unknown, each with its ``recovered``
    line; it returns them oldest first. Named parameters: ``stamp``, ``message`` and those of ``where``."""
    cols = ", ".join(f"j.{c}" for c in COLUMNS)
    return f"""WITH orphans AS (
        SELECT j.campaign, j.key FROM {names.jobs} j WHERE j.state = 'submitting' AND {where}
        FOR UPDATE OF j SKIP LOCKED
    ), moved AS (
        UPDATE {names.jobs} j SET state = 'unknown', error_class = 'ambiguous_submit',
            error_message = %(message)s, updated_at = %(stamp)s
        FROM orphans o WHERE j.campaign = o.campaign AND j.key = o.key
        RETURNING j.seq, {cols}
    ), {_logged(names, "moved")}
    SELECT {', '.join(COLUMNS)} FROM moved ORDER BY seq"""


def _logged(names: Names, source: str) -> str:
    """``WITH`` parts giving each row of ``source`` the next event id, in its order, and its ``recovered`` line."""
    return f"""ids AS (
        UPDATE {names.event_ids} SET last = last + (SELECT count(*) FROM {source})
        WHERE EXISTS (SELECT 1 FROM {source}) RETURNING last
    ), logged AS (
        INSERT INTO {names.events} (id, campaign, key, label, at, kind, state, task_id, detail)
        SELECT ids.last - (SELECT count(*) FROM {source}) + row_number() OVER (ORDER BY s.seq), s.campaign, s.key,
            s.label, %(stamp)s, 'recovered', s.state, s.task_id,
            json_build_object('error_class', 'ambiguous_submit', 'error_message', %(message)s::text)::text
        FROM {source} AS s, ids
    )"""


def limited_claim(names: Names) -> str:
    """``begin_submit`` with limits, as one query of two statements (one round trip, one implicit
    transaction): the ``claims`` row locked, then the claim, made only when the campaign's charged
    spending plus ``cost`` stays within ``max_usd`` and the account's other in-flight rows are fewer
    than ``max_in_flight``. The second statement's snapshot is taken after the lock: it sees every
    claim before it. The claim that wins takes the next turn of the account's submit schedule.
    It returns one row: the claimed row's columns (NULLs: nothing claimed), what was committed
    before it (``spent``, ``busy``), the seconds until the turn, the keys of the campaign's other
    claims after ``after``, and the newest claim's event id (this one's, when it won). Named parameters (sent bound client-side)."""
    return f"""SELECT 1 FROM {names.table('limits')} WHERE name = 'claims' FOR UPDATE;
    WITH before AS (
        SELECT (SELECT coalesce(sum(cost_usd), 0) FROM {names.jobs} WHERE campaign = %(campaign)s
                AND {CHARGED_SQL}) AS spent,
               (SELECT count(*) FROM {names.jobs} WHERE state = ANY(%(limited)s)
                AND NOT (campaign = %(campaign)s AND key = %(key)s)) AS busy
    ), ok AS (
        SELECT 1 FROM before WHERE (%(max_usd)s::numeric IS NULL OR spent + %(cost)s::numeric <= %(max_usd)s::numeric)
            AND (%(max_in_flight)s::bigint IS NULL OR busy < %(max_in_flight)s::bigint)
    ), claimed AS (
        INSERT INTO {names.jobs} AS j (campaign, key, label, shot, request, state, attempts, credits, cost_usd,
            output_path, created_at, submitting_at, updated_at, owner)
        SELECT %(campaign)s, %(key)s, %(label)s, %(shot)s, %(request)s, 'submitting', 1, %(credits)s, %(cost)s,
            %(output_path)s, %(stamp)s, %(stamp)s, %(stamp)s, %(owner)s FROM ok
        ON CONFLICT (campaign, key) DO UPDATE SET
            label = excluded.label, shot = excluded.shot, state = 'submitting', owner = excluded.owner,
            attempts = j.attempts + 1, credits = excluded.credits, cost_usd = excluded.cost_usd,
            output_path = excluded.output_path, task_id = NULL, api_status = NULL,
            error_class = NULL, error_message = NULL, file_url = NULL,
            submitting_at = excluded.submitting_at, updated_at = excluded.updated_at
        WHERE j.state = ANY(%(claimable)s)
        RETURNING {', '.join(f'j.{c}' for c in COLUMNS)}
    ), ids AS (
        UPDATE {names.event_ids} SET last = last + 1 WHERE EXISTS (SELECT 1 FROM claimed) RETURNING last
    ), logged AS (
        INSERT INTO {names.events} (id, campaign, key, label, at, kind, state, task_id, detail)
        SELECT ids.last, c.campaign, c.key, c.label, %(stamp)s, 'submitting', c.state, c.task_id, '{{}}'
        FROM claimed AS c, ids
    ), turn AS (
        UPDATE {names.table('limits')} SET next_at = greatest(next_at, {_CLOCK}) + %(interval)s
        WHERE name = %(scope)s AND EXISTS (SELECT 1 FROM claimed) RETURNING next_at - %(interval)s - {_CLOCK} AS wait
    ), others AS (
        SELECT id, key FROM {names.events} WHERE campaign = %(campaign)s AND kind = 'submitting' AND id > %(after)s
    )
    SELECT {', '.join(f'c.{c}' for c in COLUMNS)}, b.spent, b.busy, (SELECT wait FROM turn),
        array(SELECT key FROM others ORDER BY id), greatest((SELECT max(id) FROM others), (SELECT last FROM ids))
    FROM before AS b LEFT JOIN claimed AS c ON true"""


def limits_verdict(spent: Decimal, busy: int, cost: Decimal, where: Location, label: str, *,
                   max_usd: Decimal | None, max_in_flight: int | None) -> ClaimLimited | None:
    """The refusal of a claim of ``cost`` given what was committed before it, or None."""
    if max_usd is not None and spent + cost > max_usd:
        return over_budget(spent, cost, max_usd, where, label)
    if max_in_flight is not None and busy >= max_in_flight:
        return account_busy(max_in_flight, where)
    return None


class PostgresRunners:
    """Leases, takeover and the submit schedule of a PostgreSQL ledger (see the module)."""

    _session: Session
    _sql: Sql
    _where: Location
    _why_not: Callable[..., str]
    _busy: Callable[[str], LedgerError]

    @property
    def shared(self) -> bool:
        """Any number of runners share a PostgreSQL ledger."""
        return True

    def join(self, campaign: str, lease: float) -> str:
        """Register a runner leased ``lease`` seconds from the database's now; its id."""
        runner, seconds, table = uuid.uuid4().hex, check_lease(lease), self._sql.names.table("runners")

        self._session.run(lambda db: db.execute(
            f"INSERT INTO {table} (id, campaign, joined_at, lease_until) VALUES (%s, %s, %s, "
            "now() + make_interval(secs => %s))", (runner, campaign, now_iso(), seconds)), write=True)
        return runner

    def renew(self, runner: str, lease: float) -> bool:
        """Extend the lease from the database's now; False when it had run out or the runner had left."""
        table = self._sql.names.table("runners")
        sql = f"""WITH old AS (SELECT lease_until > now() AS alive FROM {table} WHERE id = %(id)s),
            up AS (INSERT INTO {table} (id, campaign, joined_at, lease_until)
                   VALUES (%(id)s, '', %(stamp)s, now() + make_interval(secs => %(lease)s))
                   ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until RETURNING 1)
            SELECT coalesce((SELECT alive FROM old), false), (SELECT count(*) FROM up)"""
        params = {"id": runner, "stamp": now_iso(), "lease": check_lease(lease)}
        row = self._session.run(lambda db: db.execute(sql, params).fetchone(), write=True)
        return bool(row and row[0])

    def leave(self, runner: str) -> None:
        """The runner ends: its submits in the air become unknown, its other rows lose their owner."""
        names = self._sql.names

        def part(db: Connection) -> None:
            with db.transaction():
                db.execute(_made_unknown(names, "j.owner = %(runner)s"),
                           {"runner": runner, "stamp": now_iso(), "message": RECOVERED})
                db.execute(f"UPDATE {names.jobs} SET owner = NULL WHERE owner = %s", (runner,))
                # ended, not deleted (a role may use a ledger with SELECT, INSERT and UPDATE only)
                db.execute(f"UPDATE {names.table('runners')} SET lease_until = now() WHERE id = %s", (runner,))

        self._session.run(part, write=True)

    def recover(self) -> list[JobRecord]:
        """Every ``submitting`` row whose owner is no live runner, made ``unknown``; rows claimed without
        an owner are left alone (nothing says their runner is dead)."""
        if self._session.read_only:
            return []
        sql = _made_unknown(self._sql.names, f"j.owner IS NOT NULL AND NOT {_alive(self._sql.names)}")
        params = {"stamp": now_iso(), "message": RECOVERED}
        rows = self._session.run(lambda db: db.execute(sql, params).fetchall(), write=True)
        return [to_record(row, self._where) for row in rows]

    def take_over(self, campaign: str, runner: str, keys: Collection[str]) -> TakenOver:
        """The campaign's orphaned rows: in-flight ones among ``keys`` become ``runner``'s, submitting ones unknown."""
        names = self._sql.names
        unknown_sql = _made_unknown(names, f"j.campaign = %(campaign)s AND j.owner IS NOT NULL AND NOT {_alive(names)}")
        track_sql = f"""UPDATE {names.jobs} j SET owner = %(runner)s FROM (
                SELECT j.campaign, j.key FROM {names.jobs} j
                WHERE j.campaign = %(campaign)s AND j.state = ANY(%(tracked)s) AND j.task_id IS NOT NULL
                  AND j.key = ANY(%(keys)s) AND (j.owner IS NULL OR (j.owner <> %(runner)s AND NOT {_alive(names)}))
                FOR UPDATE OF j SKIP LOCKED) o
            WHERE j.campaign = o.campaign AND j.key = o.key RETURNING {', '.join(f'j.{c}' for c in COLUMNS)}"""
        params: Mapping[str, Any] = {"campaign": campaign, "runner": runner, "tracked": _TRACKED, "keys": list(keys),
                                     "stamp": now_iso(), "message": RECOVERED}

        held_sql = f"""SELECT count(*) FROM {names.jobs} j WHERE j.campaign = %(campaign)s AND j.state = ANY(%(held)s)
            AND j.key = ANY(%(keys)s) AND j.owner <> %(runner)s AND {_alive(names)}"""

        def take(db: Connection) -> tuple[list[Any], list[Any], int]:
            with db.transaction():
                made = db.execute(unknown_sql, params).fetchall()
                tracked = db.execute(track_sql, params).fetchall()
                held = db.execute(held_sql, {**params, "held": [state.value for state in HELD]}).fetchone()
            return made, tracked, int(held[0]) if held else 0

        made, tracked, waiting = self._session.run(take, write=True)
        return TakenOver(tuple(to_record(row, self._where) for row in tracked),
                         tuple(to_record(row, self._where) for row in made), waiting)

    def claim(self, *, campaign: str, key: str, label: str, shot: str, request: Mapping[str, Any],
              credits: int, cost_usd: Decimal, output_path: str | None, terms: ClaimTerms,
              resubmit: Collection[JobState] = ()) -> Claim:
        """A runner's claim within its terms, its turn and the others' claims: one round trip (:func:`limited_claim`)."""
        transition = TRANSITIONS["begin_submit"]
        also = resubmit_states(resubmit)
        body = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        values = {"campaign": campaign, "key": key, "label": label, "shot": shot, "request": body,
                  "credits": credits, "cost": cost_usd, "output_path": output_path, "stamp": now_iso(),
                  "owner": terms.owner, "claimable": Sql.claimable(transition, sorted(also)), "limited": _LIMITED,
                  "max_usd": terms.max_usd, "max_in_flight": terms.max_in_flight, "interval": float(terms.interval),
                  "scope": SUBMIT_SCOPE, "after": terms.after}
        sql = limited_claim(self._sql.names)

        def claim(db: Connection) -> tuple[Any, ...]:
            for _ in range(_RACES):
                cur = psycopg.ClientCursor(db)  # two statements in one query: bound here, sent at once
                cur.execute(sql, values)
                cur.nextset()
                row = cur.fetchone()
                assert row is not None, "the claim statement always returns its one row"
                if row[0] is not None:
                    return tuple(row)
                self._why_not(db, transition, campaign, key, resubmit=also)  # the row's state is judged first
                refused = limits_verdict(Decimal(row[-5]), int(row[-4]), cost_usd, self._where, label,
                                         max_usd=terms.max_usd, max_in_flight=terms.max_in_flight)
                if refused is not None:
                    raise refused
            raise self._busy(key)

        row = self._session.run(claim, write=True, retry=False)
        wait, others, cursor = row[-3:]
        return Claim(to_record(row[:-5], self._where), max(0.0, float(wait or 0.0)), tuple(others or ()),
                     int(cursor) if cursor is not None else terms.after)

    def delay_turns(self, pause: float) -> None:
        """No submit turn before ``pause`` seconds from the database's now."""
        table = self._sql.names.table("limits")
        sql = f"""INSERT INTO {table} (name, next_at) VALUES (%(n)s, {_CLOCK} + %(p)s)
            ON CONFLICT (name) DO UPDATE SET next_at = greatest({table}.next_at, excluded.next_at)"""
        self._session.run(lambda db: db.execute(sql, {"n": SUBMIT_SCOPE, "p": float(pause)}), write=True)
