"""The command line: parse, call the pipeline stages, print, exit.

One module per group of commands (:mod:`.planning`, :mod:`.rendering`, :mod:`.reading`,
:mod:`.simulating`, :mod:`.ledgers`, :mod:`.reviewing`, :mod:`.receiving`), registered on the group of
:mod:`.group`: a new command is a new module imported here. No logic lives here beyond wiring: the pipeline (:mod:`.pipeline`) does the work.
Every :class:`~seedance_batch.errors.SeedanceError` becomes one line per problem on
stderr and its exit code (:func:`~seedance_batch.errors.exit_code`), in :func:`main`;
anything else is a bug and keeps its traceback. The run's heavy imports (httpx,
anyio, the simulator's ASGI stack) are made only by the commands that need them, so
``validate`` and ``plan`` start fast. The application's logging is set here, at the edge.
"""

from __future__ import annotations

from . import ledgers, planning, reading, receiving, rendering, reviewing, simulating
from .group import cli, main

__all__ = ["cli", "main"]

# The command modules register themselves on the group when imported.
_COMMANDS = (ledgers, planning, reading, receiving, rendering, reviewing, simulating)
