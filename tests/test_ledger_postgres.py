"""The PostgreSQL ledger as a user meets it: ``--state postgresql://...`` with the real CLI, against a real
server of the tests' own (tests/pg_server.py) and the real simulator over loopback.

The URL's password (the canary in pg_server.py) reaches no output, file or row; every error a
user can hit is one line with its exit code before anything is paid; several projects share
one database each in its own schema, their locks apart; a connection lost mid-run stops the
run (exit 5) without losing or double-paying anything; event ids come in commit order, so a
cursor over them never skips one. (The rules every backend follows are tests/test_ledger_contract.py.)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from cli_support import Outcome, Project
from engine_support import numbered_manifest
from pg_server import PASSWORD, PostgresServer, postgres_server
from seedance_batch.errors import LedgerError
from seedance_batch.ledger import JobState, open_ledger
from seedance_batch.ledger.postgres.schema import Names
from seedance_batch.ledger.postgres.statements import Sql
from seedance_batch.simulator import SimulatorConfig, run_simulator

SCALE = 0.01
REQUEST = {"model": "seedance-2", "input": {"prompt": "a lighthouse", "duration": 5, "resolution": "720p"}}


@pytest.fixture
def sim() -> Iterator[Any]:
    """The simulator, in this process: its stats say what was submitted (and paid) by whom."""
    with run_simulator(SimulatorConfig(time_scale=SCALE)) as running:
        yield running


def render(project: Project, sim: Any, state: str, *args: str, timeout: float = 120) -> Outcome:
    """``seedance-batch run m.yaml`` against the simulator, with the ledger at ``state``."""
    return project.run("run", "m.yaml", "--time-scale", str(SCALE), "--state", state, *args,
                       env={"APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": "sk-sim-pg"}, timeout=timeout)


def submits(sim: Any) -> int:
    return int(sim.stats()["submits"]["requests"])


def admin(server: PostgresServer, database: str) -> psycopg.Connection[Any]:
    return psycopg.connect(server.url(database), autocommit=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the password is a secret -----------------------------------------------------------------

def test_the_urls_password_reaches_no_output_no_file_and_no_row(project: Project, postgres: PostgresServer,
                                                                 pg_database: str, sim: Any) -> None:
    url = postgres.tcp_url(database=pg_database)  # user:PASSWORD@127.0.0.1:port/db
    shown = f"postgresql://seedance@127.0.0.1:{postgres.port}/{pg_database}"
    project.write("m.yaml", numbered_manifest("canary", 3, max_in_flight=3))
    env = {"SEEDANCE_STATE": url}
    outcomes = [
        render(project, sim, url).assert_success(),
        project.run("status", "m.yaml", env=env).assert_success(),
        project.run("status", "m.yaml", "--json", env=env).assert_success(),
        project.run("plan", "m.yaml", "--report", env=env).assert_success(),
        project.run("report", "m.yaml", "--state", url).assert_success(),
        project.run("ledger", "copy", url, "copy.sqlite").assert_success(),
        project.run("ledger", "copy", "copy.sqlite", url).assert_success(),
        project.run("status", "m.yaml", "--state", url.replace(pg_database, "nodb")).assert_failed(2),
        project.run("status", "m.yaml", "--state", url + "?schema=Not-A-Name").assert_failed(2),
        project.run("status", "m.yaml", "--state", url.replace(PASSWORD, PASSWORD + "%zz")).assert_failed(2),
    ]
    assert shown in outcomes[1].out and shown in outcomes[2].out
    for outcome in outcomes:
        assert PASSWORD not in outcome.out + outcome.err, outcome
    files = [path for path in project.path.rglob("*") if path.is_file()]
    assert any(path.name == "report.html" for path in files) and any(path.suffix == ".mp4" for path in files)
    for path in files:
        assert PASSWORD.encode() not in path.read_bytes(), path
    with admin(postgres, pg_database) as db:
        tables = db.execute("SELECT schemaname, tablename FROM pg_tables WHERE schemaname = 'seedance'").fetchall()
        assert len(tables) >= 4
        for schema, table in tables:
            assert PASSWORD not in repr(db.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()), table
    with open_ledger(url) as led:
        assert led.location == shown and [r.state for r in led.records("canary")] == [JobState.DONE] * 3


# --- errors a user can meet: one line, exit 2, nothing paid --------------------------------------

def test_an_unreachable_database_is_one_line_and_nothing_is_submitted(project: Project, sim: Any) -> None:
    project.write("m.yaml", numbered_manifest("demo", 3, max_in_flight=3))
    port = free_port()
    render(project, sim, f"postgresql://seedance@127.0.0.1:{port}/x").assert_failed(2).assert_out_err("", (
        f"postgresql://seedance@127.0.0.1:{port}/x: cannot reach the ledger's database: Connection refused (is "
        "the server running on that host and accepting TCP/IP connections?); check the host and port in --state "
        "or SEEDANCE_STATE, and that the server is running\n"))
    assert submits(sim) == 0


def test_a_wrong_password_is_one_line_without_it_and_nothing_is_submitted(project: Project, sim: Any,
                                                                          postgres: PostgresServer,
                                                                          pg_database: str) -> None:
    project.write("m.yaml", numbered_manifest("demo", 3, max_in_flight=3))
    wrong = "not-the-password-4f2a"
    outcome = render(project, sim, postgres.tcp_url(wrong, pg_database)).assert_failed(2)
    outcome.assert_out_err("", (
        f"postgresql://seedance@127.0.0.1:{postgres.port}/{pg_database}: the ledger's database refused the login: "
        'password authentication failed for user "seedance"; check the user and password (in the URL, '
        "PGPASSWORD or ~/.pgpass)\n"))
    assert submits(sim) == 0


def test_a_missing_database_is_one_line(project: Project, postgres: PostgresServer) -> None:
    project.write("m.yaml", numbered_manifest("demo", 3, max_in_flight=3))
    outcome = project.run("status", "m.yaml", "--state", postgres.url("nowhere")).assert_failed(2)
    assert outcome.err == (f"{postgres.url('nowhere')}: the ledger's database does not exist: database "
                           '"nowhere" does not exist; create it (createdb), or name another database in --state or '
                           "SEEDANCE_STATE\n")


def test_a_role_that_may_not_create_the_schema_is_told_what_to_ask_for(project: Project, sim: Any,
                                                                       postgres: PostgresServer,
                                                                       pg_database: str) -> None:
    """Refused before anything is paid; once the owner has made the ledger and granted it the tables,
    the same role renders without ever being allowed to create anything."""
    project.write("m.yaml", numbered_manifest("demo", 3, max_in_flight=3))
    role = f"runner_{pg_database}"
    with admin(postgres, pg_database) as db:
        db.execute(f"CREATE ROLE {role} LOGIN")
    as_role = f"postgresql://{role}@/{pg_database}?host={postgres.socket_dir}&port={postgres.port}"
    render(project, sim, as_role).assert_failed(2).assert_out_err("", (
        f"{as_role}: the database role {role} may not create schema seedance in database {pg_database}; ask the "
        f"database's owner to run CREATE SCHEMA seedance AUTHORIZATION {role}; or name a schema this role owns "
        "with ?schema=NAME\n"))
    open_ledger(postgres.url(pg_database)).close()  # the owner creates the ledger...
    project.run("status", "m.yaml", "--state", as_role).assert_failed(2).assert_out_err("", (
        f"{as_role}: the database role may not use the ledger's tables: permission denied for schema seedance; "
        "grant it USAGE on schema seedance and SELECT, INSERT, UPDATE on its tables (status, plan and report "
        "need only SELECT)\n"))
    assert submits(sim) == 0
    with admin(postgres, pg_database) as db:  # ...and grants what the hint says
        db.execute(f"GRANT USAGE ON SCHEMA seedance TO {role}")
        db.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA seedance TO {role}")
    render(project, sim, as_role).assert_success()
    assert max(sim.stats()["submits"]["by_body"].values()) == 1


def test_a_ledger_written_by_a_newer_version_is_refused_before_anything_is_paid(project: Project, sim: Any,
                                                                                pg_url: str) -> None:
    project.write("m.yaml", numbered_manifest("demo", 3, max_in_flight=3))
    open_ledger(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("INSERT INTO seedance._migrations VALUES ('m999_from_the_future', '2031-01-01')")
    newer = (f"{pg_url}: this ledger was written by a newer seedance-batch (schema m999_from_the_future); upgrade "
             "seedance-batch (pip install -U seedance-batch), or use another --state file\n")
    render(project, sim, pg_url).assert_failed(2).assert_out_err("", newer)
    project.run("status", "m.yaml", "--state", pg_url).assert_failed(2).assert_out_err("", newer)
    assert submits(sim) == 0


@pytest.mark.parametrize(("suffix", "message"), [
    ("?schema=Robert'); DROP TABLE jobs", "schema=Robert'); DROP TABLE jobs is not a schema name seedance-batch "
                                          "uses; use lower-case letters, digits and _ (at most 63, not starting "
                                          "with a digit or pg_), e.g. ?schema=seedance"),
    ("?schema=pg_catalog", "schema=pg_catalog is not a schema name seedance-batch uses; use lower-case letters, "
                           "digits and _ (at most 63, not starting with a digit or pg_), e.g. ?schema=seedance"),
    ("?schema=a&schema=b", "the URL names schema= more than once"),
    ("?sslmod=require", 'not a PostgreSQL URL libpq can read: invalid URI query parameter: "sslmod"; write it as '
                        "postgresql://USER@HOST:PORT/DATABASE (see libpq's connection URIs)"),
])
def test_a_url_that_cannot_be_a_ledger_is_one_line(project: Project, suffix: str, message: str) -> None:
    project.write("m.yaml", numbered_manifest("demo", 3, max_in_flight=3))
    url = f"postgresql://seedance@127.0.0.1:{free_port()}/x"
    outcome = project.run("status", "m.yaml", "--state", url + suffix).assert_failed(2)
    assert outcome.err.endswith(f": {message}\n") and outcome.err.count("\n") == 1


def test_a_schema_of_another_program_is_refused_and_left_as_it_was(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("CREATE SCHEMA seedance")
        db.execute("CREATE TABLE seedance.orders (id int)")
        db.execute("INSERT INTO seedance.orders VALUES (1)")
    for read_only in (False, True):
        with pytest.raises(LedgerError, match="schema seedance of this database is not a seedance-batch ledger "
                                              r"\(it holds tables of another program: orders\)"):
            open_ledger(pg_url, read_only=read_only)  # type: ignore[call-overload]
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'seedance'").fetchall() == [("orders",)]


# --- one database, several projects ---------------------------------------------------------------

def test_two_projects_share_a_database_each_in_its_schema_their_locks_apart(pg_url: str) -> None:
    alpha, beta = f"{pg_url}&schema=alpha", f"{pg_url}&schema=beta"
    with open_ledger(alpha) as led:
        led.begin_submit(campaign="launch", key="k1", label="a/1", shot="a", request=REQUEST, credits=1,
                         cost_usd=Decimal("0.20"), output_path=None)
    # A runner of alpha migrating (or any session) holds alpha's migration lock...
    with psycopg.connect(pg_url) as holder:
        holder.execute("LOCK TABLE alpha._migrations IN ACCESS EXCLUSIVE MODE")
        # ...and beta is created, migrated and written all the same, without waiting (lock_timeout would say)
        with open_ledger(f"{beta}&options=-c%20lock_timeout%3D2000") as other:
            other.begin_submit(campaign="launch", key="k1", label="b/1", shot="b", request=REQUEST, credits=1,
                               cost_usd=Decimal("0.20"), output_path=None)
            assert [r.label for r in other.records("launch")] == ["b/1"]
        holder.rollback()
    with open_ledger(alpha, read_only=True) as looking:  # type: ignore[union-attr]
        assert [r.label for r in looking.records("launch")] == ["a/1"]  # the same campaign name, its own rows


# --- the connection dropped mid-run ----------------------------------------------------------------

def test_a_server_stopped_mid_run_is_exit_5_and_the_next_run_pays_nothing_twice(project: Project) -> None:
    """``pg_ctl -m immediate stop`` while a real run submits: it stops at once (exit 5, one line naming the
    ledger), every task the service created is in the ledger or named on that line, and after a restart the
    same command resumes without paying for any job twice."""
    jobs = 30
    project.write("m.yaml", numbered_manifest("dropped", jobs, max_in_flight=jobs))
    with postgres_server() as server, run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        with admin(server, "postgres") as db:
            db.execute("CREATE DATABASE dropped")
        url = server.url("dropped")
        open_ledger(url).close()
        stopper = threading.Thread(target=_stop_after, args=(server, sim, 8))
        stopper.start()
        first = render(project, sim, url)
        stopper.join()
        assert 8 <= submits(sim) < jobs, "the run did not stop mid-run"
        first.assert_failed(5)
        last = first.err.splitlines()[-1]
        assert last.startswith(f"{url}: lost the connection to the ledger's database"), first.err
        server.start()
        again = render(project, sim, url)
        stats = sim.stats()
        with open_ledger(url) as led:
            rows = {r.key: r for r in led.records("dropped")}
    # exit 1 when a submit was cut off: its row is unknown (its runner's lease ran out) or, while that
    # lease lasted, still submitting; never sent again, the job not done
    assert again.code in (0, 1) and "Traceback" not in again.err, again.err
    by_body = stats["submits"]["by_body"]
    assert max(by_body.values()) == 1  # no job paid twice
    cut_off = {JobState.SUBMITTING, JobState.UNKNOWN}
    assert len(rows) == jobs and {r.state for r in rows.values()} <= {JobState.DONE, *cut_off}
    # every job the service made a task for is done (its id committed), or held as cut off: never pending
    assert all(rows[key].state in (JobState.DONE, *cut_off) for key in by_body)
    done = [r for r in rows.values() if r.state is JobState.DONE]
    assert all(by_body.get(r.key) == 1 and r.task_id for r in done) and len({r.task_id for r in done}) == len(done)
    assert (again.code == 1) == any(r.state in cut_off for r in rows.values())


def _stop_after(server: PostgresServer, sim: Any, count: int) -> None:
    deadline = time.monotonic() + 60
    while submits(sim) < count and time.monotonic() < deadline:
        time.sleep(0.002)  # watching the stats for the stop point, not waiting for luck
    server.stop_immediately()


def test_a_write_whose_connection_was_cut_is_made_again_and_a_claim_is_not(postgres: PostgresServer,
                                                                             pg_url: str) -> None:
    """An administrator ends the ledger's session (as a restart or a dropped network would): a write that
    finds its own earlier commit as a repeat is made on a new connection; a claim stops instead."""
    with open_ledger(pg_url) as led, psycopg.connect(pg_url, autocommit=True) as dba:
        led.begin_submit(campaign="c", key="k1", label="l", shot="s", request=REQUEST, credits=1,
                         cost_usd=Decimal("0.20"), output_path=None)
        kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'seedance-batch'"
        assert dba.execute(kill).fetchall() == [(True,)]
        assert led.submitted("c", "k1", "task-1", "not_started") is True  # on a new connection
        assert dba.execute(kill).fetchall() == [(True,)]
        with pytest.raises(LedgerError, match=r"lost the connection to the ledger's database: .*run the same "
                                              r"command again once the database is reachable"):
            led.begin_submit(campaign="c", key="k2", label="l2", shot="s", request=REQUEST, credits=1,
                             cost_usd=Decimal("0.20"), output_path=None)
        assert led.record("c", "k1").task_id == "task-1"  # type: ignore[union-attr]


# --- event ids in commit order --------------------------------------------------------------------

def test_an_event_committed_later_never_gets_a_smaller_id(pg_url: str) -> None:
    """A cursor over events (``events_after``) keeps the last id it saw: an event committed after that must
    not carry a smaller one. The next writer waits for the open one's commit, then takes the next id."""
    with open_ledger(pg_url) as led, psycopg.connect(pg_url) as slow:
        led.note("c", "k1", "webhook", {"n": 0})
        sql = Sql(Names("seedance"))
        slow.execute(sql.event, ("c", "k1", "", "2026-01-01T00:00:00+00:00", "webhook", None, None, "{}"))
        seen = led.last_event_id("c")  # a cursor reads: the slow transaction's event is not committed yet
        writer = threading.Thread(target=led.note, args=("c", "k1", "webhook", {"n": 2}))
        writer.start()
        _wait_until_blocked(pg_url)
        slow.commit()
        writer.join(timeout=30)
        later = led.events_after("c", seen, {"webhook"})
    assert [e.detail for e in later] == [{}, {"n": 2}]  # neither skipped: in the order committed
    assert [e.id for e in later] == sorted(e.id for e in later)


def _wait_until_blocked(url: str) -> None:
    """Until a seedance-batch session waits for a lock (the counter row the open transaction holds)."""
    with psycopg.connect(url, autocommit=True) as db:
        for _ in range(5000):
            waiting = db.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'seedance-batch' "
                                 "AND wait_event_type = 'Lock'").fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.002)
    raise AssertionError("the second writer never waited")


# --- read-only openings: refused by the server too --------------------------------------------------

def test_a_read_only_opening_is_refused_writes_by_the_server_itself(pg_url: str) -> None:
    open_ledger(pg_url).close()
    looking = open_ledger(pg_url, read_only=True)
    assert looking is not None
    with looking, pytest.raises(LedgerError, match="the ledger's database is read-only: cannot execute INSERT "
                                                   "in a read-only transaction"):
        looking._session.run(lambda db: db.execute(  # type: ignore[attr-defined]  # past the backend's guard
            "INSERT INTO seedance._migrations VALUES ('m900_x', 'now')"))


def test_status_of_a_database_without_a_ledger_yet_creates_nothing(project: Project, pg_url: str) -> None:
    project.write("m.yaml", numbered_manifest("demo", 2, max_in_flight=2))
    project.run("status", "m.yaml", "--state", pg_url).assert_success()
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'seedance'").fetchone() == (0,)



# --- no server binaries: a clear skip, or a failure where a server is required ----------------------

def test_without_the_server_binaries_the_tests_skip_saying_why_or_fail_under_ci(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pg_server

    monkeypatch.setattr(pg_server, "postgres_bin", lambda: None)
    monkeypatch.delenv(pg_server.REQUIRE_ENV, raising=False)
    missing = r"PostgreSQL server binaries not found under /usr/lib/postgresql/\*/bin \(apt-get install postgresql\)"
    with pytest.raises(pytest.skip.Exception, match=missing), postgres_server():
        pass
    monkeypatch.setenv(pg_server.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="SEEDANCE_REQUIRE_POSTGRES=1: a server is required here"), \
            postgres_server():
        pass
