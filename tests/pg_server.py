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


def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL server ``bin`` folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``, or fail when the environment demands a server (CI)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: a server is required here)")
    pytest.skip(reason)


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
def postgres_server() -> Iterator[PostgresServer]:
    """Start a fresh server; stop it and remove its folder on exit."""
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
        options = f"-k {sockets} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"],
            check=True, capture_output=True, preexec_fn=become, timeout=120,
        )
        yield PostgresServer(folder, sockets, port)
    finally:
        if data.exists():
            subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, preexec_fn=become, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
