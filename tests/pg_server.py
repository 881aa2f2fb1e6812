"""A real PostgreSQL server for the tests: ``initdb`` + ``pg_ctl`` in a temporary folder.

Debian's server binaries live under ``/usr/lib/postgresql/<version>/bin`` (not on PATH).
The server listens on a Unix socket in its own folder and on a free loopback port; the
socket trusts its local user, TCP asks for a password (scram-sha-256), so tests can
exercise both a working connection and a wrong password.

PostgreSQL refuses to run as root: under root (CI containers) the server runs as the
``postgres`` system user (or ``nobody``), in a folder that user owns.

Absent binaries skip the tests that need a server, with the reason; with
``SEEDANCE_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) they fail instead.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REQUIRE_ENV = "SEEDANCE_REQUIRE_POSTGRES"
SUPERUSER = "seedance"
PASSWORD = "pg-test-secret-7d1c"  # the TCP password; a canary for "never printed" tests


@dataclass(frozen=True)
class PostgresServer:
    """A running server: connect by ``socket_url`` (trusted) or ``tcp_url`` (password)."""

    folder: Path
    socket_dir: Path
    port: int
    settings: tuple[str, ...] = ()  # more ``-c name=value`` server settings (bench/multi_runner.py: pg_stat_statements)

    @property
    def socket_url(self) -> str:
        """``postgresql://`` URL over the Unix socket (no password needed)."""
        return f"postgresql://{SUPERUSER}@/postgres?host={self.socket_dir}&port={self.port}"

    def tcp_url(self, password: str = PASSWORD, database: str = "postgres") -> str:
        """``postgresql://`` URL over loopback TCP with a password."""
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        """The socket URL of another database on this server."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}&port={self.port}"

    def stop_immediately(self) -> None:
        """``pg_ctl -m immediate stop``: every connection dropped at once, as a crash would."""
        _pg_ctl(self, "-m", "immediate", "-w", "stop")

    def start(self) -> None:
        """Start the server again on the same folder, socket and port."""
        options = " ".join([_options(self.socket_dir, self.port), *(f"-c {each}" for each in self.settings)])
        _pg_ctl(self, "-o", options, "-l", str(self.folder / "log"), "-w", "start")


def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL server ``bin`` folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``, or fail when the environment demands a server (CI)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: a server is required here)")
    pytest.skip(reason)


def _options(sockets: Path, port: int) -> str:
    return f"-k {sockets} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"


def _pg_ctl(server: PostgresServer, *args: str) -> None:
    bindir = postgres_bin()
    assert bindir is not None
    subprocess.run([str(bindir / "pg_ctl"), "-D", str(server.folder / "data"), *args], check=True,
                   capture_output=True, preexec_fn=_runner(_run_as()), timeout=120)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def _runner(user: pwd.struct_passwd | None):  # type: ignore[no-untyped-def]
    def become() -> None:
        if user is not None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
    return become


@contextmanager
def postgres_server(settings: tuple[str, ...] = ()) -> Iterator[PostgresServer]:
    """Start a fresh server (``settings``: more ``name=value`` server settings); stop it and remove its folder on exit."""
    bindir = postgres_bin()
    if bindir is None:
        skip_or_fail("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                     "(apt-get install postgresql)")
        raise AssertionError("unreachable")
    user = _run_as()
    folder = Path(tempfile.mkdtemp(prefix="seedance-pg-"))
    data, sockets = folder / "data", folder / "sock"
    sockets.mkdir()
    if user is not None:
        for path in (folder, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    become = _runner(user)
    pwfile = folder / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if user is not None:
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    port = _free_port()
    try:
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, f"--pwfile={pwfile}", "-A", "trust",
             "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, preexec_fn=become, timeout=120,
        )
        server = PostgresServer(folder, sockets, port, settings)
        server.start()
        yield server
    finally:
        if data.exists():
            subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, preexec_fn=become, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


# --- fixtures (registered in conftest.py): one server per test session, one database per test ---

_DATABASES = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test session's own (skipped, or failed under CI, without the binaries)."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_database(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped afterwards; its name."""
    import psycopg

    name = f"t{os.getpid()}_{next(_DATABASES)}"
    with psycopg.connect(postgres.socket_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(postgres.socket_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(postgres: PostgresServer, pg_database: str) -> str:
    """The socket URL of a fresh, empty database (no ledger in it yet)."""
    return postgres.url(pg_database)
