"""The PostgreSQL ledger, for teams: one campaign shared by many runners, ``--state postgresql://...``.

By meaning: :mod:`.backend` (:class:`PostgresLedger`, the interface's operations),
:mod:`.statements` (each write one guarded statement with its audit line), :mod:`.claims`
(runners' leases on the database's clock, takeover, claims within the budget and the
account's limits, the submit schedule), :mod:`.rows`
(rows read back as records), :mod:`.schema` (the DDL of each named migration, in the
ledger's own PostgreSQL schema), :mod:`.session` (one call at a time, reconnecting),
:mod:`.connection` (connecting, and every database error in the user's words) and
:mod:`.target` (the URL: libpq's keywords, the schema, and the URL shown without its
password). psycopg 3 is the driver.
"""

from __future__ import annotations

from .backend import PostgresLedger
from .target import DEFAULT_SCHEMA, SCHEMES, shown_url

__all__ = ["DEFAULT_SCHEMA", "SCHEMES", "PostgresLedger", "shown_url"]
