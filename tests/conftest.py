"""Shared fixtures: a project folder with the real CLI (cli_support.py), a real ledger file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import Project, clean_environment
from pg_server import pg_database, pg_url, postgres  # noqa: F401 - fixtures: a real PostgreSQL server
from seedance_batch.ledger import Ledger, open_ledger


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """An empty project folder and the CLI to run in it."""
    return Project(tmp_path, clean_environment())


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A real, empty SQLite ledger file, closed afterwards."""
    with open_ledger(tmp_path / "ledger.sqlite") as opened:
        yield opened
