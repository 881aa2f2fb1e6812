"""Where a PostgreSQL ledger is: a ``postgresql://`` URL read into libpq's keywords, a schema, and its shown form.

The URL is libpq's own (``postgresql://user:password@host:port/dbname?sslmode=...``,
``?host=/run/postgresql`` for a Unix socket; libpq's environment, ``PGPASSWORD`` and
``~/.pgpass`` apply as usual), plus one key of ours: ``?schema=NAME`` (default
``seedance``), the PostgreSQL schema that holds this ledger's tables, so one database
can hold several projects, each with its own tables and its own locks.

The password is a secret like the API key. :attr:`Target.shown` is the URL without it
(what :attr:`~..api.Ledger.location` says and every error names), and the password is
handed to libpq as a keyword, never inside a text libpq might quote back in an error
(its URI parser does: ``invalid percent-encoded token: "<password>"``). Every text
libpq or the server says is scrubbed of it too (:meth:`Target.scrub`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ...errors import Location, UsageError
from ...safetext import bound, one_line, scrub

__all__ = ["DEFAULT_SCHEMA", "SCHEMES", "Target", "parse_target", "shown_url"]

SCHEMES = ("postgresql", "postgres")
DEFAULT_SCHEMA = "seedance"
# A schema name we quote without fear and PostgreSQL accepts: no "pg_" (reserved), at
# most 63 bytes (NAMEDATALEN - 1), lower case (what an unquoted name in psql means).
_SCHEMA_NAME = re.compile(r"(?!pg_)[a-z_][a-z0-9_]{0,62}")
# libpq settings we choose unless the URL does: give up on an unreachable server in 10 s
# rather than libpq's "forever", notice a dead peer mid-run within about a minute, and
# name ourselves in pg_stat_activity.
_DEFAULTS: Mapping[str, str] = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "application_name": "seedance-batch",
}
_BAD_URL_HINT = "write it as postgresql://USER@HOST:PORT/DATABASE (see libpq's connection URIs)"


@dataclass(frozen=True, slots=True)
class Target:
    """One PostgreSQL ledger's address: libpq keywords (with the password: never shown), schema, shown URL."""

    params: Mapping[str, str]
    schema: str
    shown: str
    secrets: tuple[str, ...]

    @property
    def where(self) -> Location:
        """The location every error about this ledger names: the URL without its password."""
        return Location(file=self.shown)

    def scrub(self, text: str) -> str:
        """A text libpq or the server said, without the password, on one bounded line."""
        return one_line(bound(" ".join(scrub(text, self.secrets).split())))


def shown_url(location: str) -> str:
    """``location`` as the user may see it: the URL without a password (in the user part or ``?password=``)."""
    try:
        parts = urlsplit(location)
        netloc = parts.netloc
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}@{host}"
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"]
        return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="/:,"), ""))
    except ValueError:  # a URL urllib cannot split (a broken [IPv6] host): show nothing of it
        return f"{location.partition(':')[0]}://(an unreadable URL)"


def parse_target(location: str) -> Target:
    """Read a ``postgresql://`` URL; a URL libpq cannot read, or a bad ``schema=``, is one UsageError."""
    shown = shown_url(location)
    where = Location(file=shown)
    secrets = _secrets(location)
    without_schema, schema = _take_schema(location, where)
    from psycopg.conninfo import conninfo_to_dict  # libpq's own URI parser: every key it knows

    try:
        params = {key: str(value) for key, value in conninfo_to_dict(without_schema).items()}
    except Exception as exc:
        text = one_line(bound(" ".join(scrub(str(exc), secrets).split())))
        raise UsageError(f"not a PostgreSQL URL libpq can read: {text}", location=where, hint=_BAD_URL_HINT) from None
    return Target({**_DEFAULTS, **params}, schema, shown, secrets)


def _take_schema(location: str, where: Location) -> tuple[str, str]:
    """The URL without our ``schema=`` key (libpq refuses keys it does not know), and that schema."""
    base, _, query = location.partition("?")
    pairs = query.split("&") if query else []
    ours = [unquote(pair.partition("=")[2]) for pair in pairs if pair.partition("=")[0] == "schema"]
    rest = [pair for pair in pairs if pair.partition("=")[0] != "schema"]
    if len(ours) > 1:
        raise UsageError("the URL names schema= more than once", location=where)
    schema = ours[0] if ours else DEFAULT_SCHEMA
    if not _SCHEMA_NAME.fullmatch(schema):
        raise UsageError(f"schema={one_line(bound(schema, 70))} is not a schema name seedance-batch uses",
                         location=where, hint="use lower-case letters, digits and _ (at most 63, not starting "
                                              "with a digit or pg_), e.g. ?schema=seedance")
    return base + ("?" + "&".join(rest) if rest else ""), schema


def _secrets(location: str) -> tuple[str, ...]:
    """Every spelling of a password the URL or the environment holds, for scrubbing texts."""
    found: set[str] = set()
    try:
        parts = urlsplit(location)
        raw = parts.netloc.rpartition("@")[0].partition(":")[2] if "@" in parts.netloc else ""
        found.update((raw, unquote(raw)))
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "password":
                found.update((value, unquote(value)))
    except ValueError:
        pass
    found.add(os.environ.get("PGPASSWORD", ""))
    return tuple(sorted(secret for secret in found if secret))

