"""The SQLite ledger, the embedded default: one file, ``.seedance/ledger.sqlite`` unless told otherwise.

By meaning: :mod:`.backend` (:class:`SqliteLedger`, the interface's operations),
:mod:`.claims` (the runner operations, simple here: one runner at a time),
:mod:`.extras` (the event cursor, callback tokens, media cache, decisions, copying in),
:mod:`.rows` (rows read back as records, checked), :mod:`.runlock` (one run at a
time, whatever name the file is reached by), :mod:`.connect` (opening for a run or
only to look) and :mod:`.schema` (the DDL of each named migration).
"""

from __future__ import annotations

import os
from pathlib import Path

from .backend import SqliteLedger

__all__ = ["DEFAULT_PATH", "STATE_ENV", "SqliteLedger", "default_path"]

DEFAULT_PATH = Path(".seedance") / "ledger.sqlite"
STATE_ENV = "SEEDANCE_STATE"


def default_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where the ledger lives: ``--state`` > ``$SEEDANCE_STATE`` > ``.seedance/ledger.sqlite``."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(STATE_ENV)
    return Path(from_env) if from_env else DEFAULT_PATH
