"""The PostgreSQL ledger's schema: the DDL of each named migration, in a PostgreSQL schema of its own.

The names and their order are the backend-neutral list in :mod:`..migrations`; here is
what each one does in PostgreSQL. Every table lives in the ledger's schema
(``?schema=``, default ``seedance``), so one database holds several projects, and
every lock this backend takes is a lock on one of that schema's tables (migrations
lock its ``_migrations`` table; runs lock rows): never a database-wide advisory lock
that two projects would share (terraform's pg backend had exactly that bug).

What is stored keeps the values exactly as the SQLite ledger does, so ``ledger copy``
moves them both ways unchanged: JSON as the text it was written as (PostgreSQL's
``jsonb`` would refuse an escaped NUL a prompt may hold, and reorder keys), stamps as
the ISO 8601 text every reader parses, money as ``numeric`` (exact, never a float).

A role without the right to create the schema can still use a ledger someone else
created for it: nothing is created when every migration is there already.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from psycopg import errors as pg_errors

from ...errors import LedgerError
from ...times import now_iso
from ..migrations import MIGRATIONS, Steps, known_migrations, shown_names
from ..sqlite.rows import COLUMNS
from .connection import Connection
from .target import Target

# The steps are exported by their migration names (the registry takes the function names).
__all__ = ["EVENT_COLUMNS", "STEPS", "Names", "applied_migrations", "check_shape", "m001_jobs_and_events",
           "m010_claims", "m011_callback_tokens", "m012_decisions", "m013_media_checks", "migrate"]

EVENT_COLUMNS = ("id", "campaign", "key", "label", "at", "kind", "state", "task_id", "detail")
_FOREIGN_HINT = "name another schema with ?schema=NAME in the URL"


@dataclass(frozen=True, slots=True)
class Names:
    """The ledger's tables, qualified by its schema (a name :mod:`.target` checked, so quoting it is safe)."""

    schema: str

    def table(self, name: str) -> str:
        return f'"{self.schema}".{name}'

    @property
    def jobs(self) -> str:
        return self.table("jobs")

    @property
    def events(self) -> str:
        return self.table("events")

    @property
    def event_ids(self) -> str:
        return self.table("event_ids")

    @property
    def migrations(self) -> str:
        return self.table("_migrations")


migration: Steps[Callable[[Connection, Names], None]] = Steps("postgresql")


@migration
def m001_jobs_and_events(db: Connection, names: Names) -> None:
    # seq keeps the rows' order (SQLite's rowid): oldest first, an update keeps a row's place.
    db.execute(
        f"""CREATE TABLE {names.jobs} (
            seq BIGINT GENERATED ALWAYS AS IDENTITY,
            campaign TEXT NOT NULL, key TEXT NOT NULL, label TEXT NOT NULL, shot TEXT NOT NULL,
            request TEXT NOT NULL, state TEXT NOT NULL, task_id TEXT, api_status TEXT,
            attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            credits BIGINT NOT NULL DEFAULT 0 CHECK (credits >= 0),
            cost_usd NUMERIC NOT NULL DEFAULT 0 CHECK (cost_usd >= 0), error_class TEXT, error_message TEXT,
            file_url TEXT, output_path TEXT, size BIGINT CHECK (size >= 0), sha256 TEXT,
            created_at TEXT, submitting_at TEXT, submitted_at TEXT, finished_at TEXT,
            downloaded_at TEXT, updated_at TEXT,
            PRIMARY KEY (campaign, key))"""
    )
    db.execute(f"CREATE INDEX jobs_order ON {names.jobs} (campaign, seq)")
    db.execute(f"CREATE INDEX jobs_task_id ON {names.jobs} (task_id)")
    # Event ids come from the one-row event_ids counter, in commit order (see .statements).
    db.execute(
        f"""CREATE TABLE {names.events} (
            id BIGINT PRIMARY KEY, campaign TEXT NOT NULL, key TEXT NOT NULL,
            label TEXT NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL, state TEXT,
            task_id TEXT, detail TEXT NOT NULL DEFAULT '{{}}')"""
    )
    db.execute(f"CREATE INDEX events_campaign ON {names.events} (campaign, id)")
    db.execute(f"CREATE TABLE {names.event_ids} (one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one), "
               "last BIGINT NOT NULL)")
    db.execute(f"INSERT INTO {names.event_ids} (last) VALUES (0)")


@migration
def m012_decisions(db: Connection, names: Names) -> None:
    # decision_history: every decision ever written, append-only (the review's audit trail);
    # decisions: the current one per job, replaced in the same transaction as its history line.
    columns = """campaign TEXT NOT NULL, key TEXT NOT NULL, label TEXT NOT NULL, combination TEXT NOT NULL,
        verdict TEXT NOT NULL, picked BOOLEAN NOT NULL, note TEXT NOT NULL, reviewer TEXT NOT NULL, at TEXT NOT NULL"""
    db.execute(f"CREATE TABLE {names.table('decision_history')} (id BIGINT GENERATED ALWAYS AS IDENTITY "
               f"PRIMARY KEY, {columns})")
    db.execute(f"CREATE INDEX decision_history_campaign ON {names.table('decision_history')} (campaign, id)")
    db.execute(f"CREATE TABLE {names.table('decisions')} (seq BIGINT GENERATED ALWAYS AS IDENTITY, {columns}, "
               "PRIMARY KEY (campaign, key))")
    # One picked take per combination, whatever the code above it does: the database refuses a second.
    db.execute(f"CREATE UNIQUE INDEX decisions_one_pick ON {names.table('decisions')} (campaign, combination) "
               "WHERE picked")


@migration
def m011_callback_tokens(db: Connection, names: Names) -> None:
    # One row per run that asked for callbacks: the SHA-256 of the secret in its callback path
    # (never the secret), so a `receive` elsewhere can tell the run's callbacks from strangers'.
    db.execute(f"""CREATE TABLE {names.table('callback_tokens')} (digest TEXT PRIMARY KEY, campaign TEXT NOT NULL,
                   created_at TEXT NOT NULL, revoked_at TEXT)""")
    # A runner's cursor reads one kind of event (webhook) after an id: this keeps it an index range.
    db.execute(f"CREATE INDEX events_kind ON {names.events} (campaign, kind, id)")


@migration
def m013_media_checks(db: Connection, names: Names) -> None:
    # The source media cache (..mediacache): one row per URL hash (never the URL), what its host said.
    db.execute(f"""CREATE TABLE {names.table('media_checks')} (url_hash TEXT PRIMARY KEY, shown TEXT NOT NULL,
                   checked_at TEXT NOT NULL, content_type TEXT, size BIGINT CHECK (size >= 0), etag TEXT,
                   last_modified TEXT)""")


@migration
def m010_claims(db: Connection, names: Names) -> None:
    # Many runners (..claims): a job's owner (the runner that claimed or tracks it), the runners'
    # leases on the database's clock, and the limits: the account's submit schedule (next_at: epoch
    # seconds of the database's clock) and the row every runner's claim locks first.
    db.execute(f"ALTER TABLE {names.jobs} ADD COLUMN owner TEXT")
    db.execute(f"CREATE TABLE {names.table('runners')} (id TEXT PRIMARY KEY, campaign TEXT NOT NULL, "
               "joined_at TEXT NOT NULL, lease_until TIMESTAMPTZ NOT NULL)")
    db.execute(f"CREATE TABLE {names.table('limits')} (name TEXT PRIMARY KEY, next_at DOUBLE PRECISION NOT NULL)")
    db.execute(f"INSERT INTO {names.table('limits')} (name, next_at) VALUES ('claims', 0), ('submit', 0)")
    db.execute(f"CREATE INDEX jobs_state ON {names.jobs} (state)")
    db.execute(f"CREATE INDEX jobs_owner ON {names.jobs} (owner)")


STEPS = migration.in_order()

# What this version reads from each table (a hand-edited or foreign schema lacking one is refused).
_SHAPE = {"jobs": ("seq", *COLUMNS), "events": EVENT_COLUMNS}


def applied_migrations(db: Connection, target: Target) -> tuple[str, ...]:
    """The migrations this ledger has applied; ``()`` when its schema is missing or empty (a new ledger).

    Only reads. A schema holding tables of another program, or a ``_migrations`` table
    with none of ours, is refused; so is one written by a newer seedance-batch.
    """
    tables = {row[0] for row in db.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')", (target.schema,))}
    if not tables:
        return ()
    foreign = LedgerError(f"schema {target.schema} of this database is not a seedance-batch ledger (it holds "
                          f"tables of another program: {shown_names(tables)})", location=target.where,
                          hint=_FOREIGN_HINT)
    if "_migrations" not in tables:
        raise foreign
    try:
        with db.transaction():  # a failed statement must not spoil the connection's next one
            applied = {str(row[0]) for row in db.execute(f"SELECT name FROM {Names(target.schema).migrations}")}
    except pg_errors.UndefinedColumn:  # a _migrations table of another shape: another program's
        raise foreign from None
    if not applied & set(MIGRATIONS) and (applied or tables != {"_migrations"}):
        raise foreign
    return known_migrations(applied, target.where)


def check_shape(db: Connection, target: Target) -> None:
    """Refuse a ledger whose tables lack a column this version reads."""
    rows = db.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s",
                      (target.schema,)).fetchall()
    for table, columns in _SHAPE.items():
        have = {column for name, column in rows if name == table}
        missing = [column for column in columns if column not in have]
        if missing:
            what = f"has no {table} table" if not have else f"its {table} table has no {', '.join(missing)}"
            raise LedgerError(f"schema {target.schema} is not a ledger this version can read ({what})",
                              location=target.where, hint=_FOREIGN_HINT)


def migrate(db: Connection, target: Target) -> None:
    """Create the schema and apply the migrations this ledger lacks, each in its own transaction.

    :func:`applied_migrations` runs first, so nothing is written to a schema that is not
    a ledger, and nothing at all (no CREATE privilege needed) when the ledger is current.
    Two runners migrating at once wait for each other on the schema's ``_migrations``
    table, and each step is applied once.
    """
    applied = set(applied_migrations(db, target))
    if applied >= set(MIGRATIONS):
        return
    names = Names(target.schema)
    _create(db, target, f'CREATE SCHEMA IF NOT EXISTS "{target.schema}"',
            exists="SELECT 1 FROM pg_namespace WHERE nspname = %s", what="create schema")
    _create(db, target, f"CREATE TABLE IF NOT EXISTS {names.migrations} (name TEXT PRIMARY KEY, "
                        "applied_at TEXT NOT NULL)",
            exists="SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                   "WHERE n.nspname = %s AND c.relname = '_migrations'", what="create tables in schema")
    for name, step in STEPS:
        if name in applied:
            continue
        try:
            with db.transaction():
                db.execute(f"LOCK TABLE {names.migrations} IN SHARE ROW EXCLUSIVE MODE")
                if db.execute(f"SELECT 1 FROM {names.migrations} WHERE name = %s", (name,)).fetchone() is None:
                    step(db, names)
                    db.execute(f"INSERT INTO {names.migrations} (name, applied_at) VALUES (%s, %s)",
                               (name, now_iso()))
        except pg_errors.InsufficientPrivilege:
            raise _not_allowed(db, target, "create tables in schema") from None


def _create(db: Connection, target: Target, statement: str, *, exists: str, what: str) -> None:
    """``CREATE ... IF NOT EXISTS``, sent only when ``exists`` finds nothing: PostgreSQL checks the
    privilege before the existence, so a role that may not create it could not use it otherwise."""
    if db.execute(exists, (target.schema,)).fetchone() is not None:
        return
    try:
        db.execute(statement)
    except (pg_errors.UniqueViolation, pg_errors.DuplicateSchema, pg_errors.DuplicateTable):
        pass  # another runner created it between the look and the statement: as good
    except pg_errors.InsufficientPrivilege:
        raise _not_allowed(db, target, what) from None


def _not_allowed(db: Connection, target: Target, what: str) -> LedgerError:
    """The role may not create the ledger's schema or tables: say who and what to ask for."""
    role, database = db.info.user, db.info.dbname
    if what == "create schema":
        ask = (f"ask the database's owner to run CREATE SCHEMA {target.schema} AUTHORIZATION {role}; "
               "or name a schema this role owns with ?schema=NAME")
        message = f"the database role {role} may not create schema {target.schema} in database {database}"
    else:
        ask = f"ask the schema's owner to run GRANT CREATE ON SCHEMA {target.schema} TO {role}; or let that owner " \
              "run seedance-batch once to create the ledger"
        message = f"the database role {role} may not create the ledger's tables in schema {target.schema}"
    return LedgerError(message, location=target.where, hint=ask)

