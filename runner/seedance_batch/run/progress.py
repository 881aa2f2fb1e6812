"""The face of a run: a rich live display on a terminal, plain one-line logs otherwise.

The engine reports through the small :class:`Progress` interface: a job event
(``submitted``, ``done``, ``failed``...), a run-level note, and the tallies.
:class:`LineProgress` writes one line per event (CI, pipes, ``CI=true``);
:class:`LiveProgress` shows submitted / rendering / done / failed, spend against
the budget, how far along the renders are (the status answers' ``progress``, averaged)
and an ETA, and prints notable events above the bars. Neither ever
sees the API key: events carry labels, task ids, states and scrubbed messages.

Labels, task ids and messages are outside text (a manifest's values, the service's
words): both show them :func:`~seedance_batch.safetext.one_line`, and the live display
never as rich markup, so ``[/x]`` cannot stop it, ``[link=...]`` makes no hyperlink and
an escape sequence cannot clear the screen or reach a CI log raw.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from decimal import Decimal
from typing import IO, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.text import Text

from ..safetext import MAX_SERVICE_TEXT, bound, one_line

__all__ = ["LineProgress", "LiveProgress", "Progress", "QuietProgress", "choose_progress"]

# Events that end a job, and the tally each one moves.
FINAL = {"done": "done", "failed": "failed", "unknown": "unknown", "timed_out": "timed out"}


class Progress(Protocol):
    """What the engine tells the user while it runs."""

    def start(self, total: int, budget: Decimal | None, spent: Decimal) -> None: ...
    def job(self, label: str, what: str, detail: str = "") -> None: ...
    def note(self, message: str) -> None: ...
    def spend(self, spent: Decimal) -> None: ...
    def rendering(self, reporting: int, percent: float) -> None:
        """``reporting`` tasks rendering said how far along they are: ``percent`` on average."""
        ...
    def close(self) -> None: ...


class QuietProgress:
    """Says nothing (tests, benchmarks); keeps the tallies."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.notes: list[str] = []
        self.percent: float | None = None  # the renders' average progress, last told

    def start(self, total: int, budget: Decimal | None, spent: Decimal) -> None:
        self.total = total

    def job(self, label: str, what: str, detail: str = "") -> None:
        self.counts[what] += 1

    def note(self, message: str) -> None:
        self.notes.append(message)

    def spend(self, spent: Decimal) -> None:
        pass

    def rendering(self, reporting: int, percent: float) -> None:
        self.percent = percent

    def close(self) -> None:
        pass


class LineProgress(QuietProgress):
    """One plain line per event, for logs and CI."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        self._out = stream or sys.stderr
        self._started = time.monotonic()

    def _write(self, text: str) -> None:
        self._out.write(f"[{time.monotonic() - self._started:7.1f}s] {text}\n")
        self._out.flush()

    def start(self, total: int, budget: Decimal | None, spent: Decimal) -> None:
        super().start(total, budget, spent)
        limit = f", budget ${budget:.2f} (${spent:.2f} spent before)" if budget is not None else ""
        self._write(f"run: {total} job(s) to render or track{limit}")

    def job(self, label: str, what: str, detail: str = "") -> None:
        super().job(label, what, detail)
        self._write(_event_line(label, what, detail))

    def note(self, message: str) -> None:
        super().note(message)
        self._write(one_line(message))


class LiveProgress(QuietProgress):
    """Bars on a terminal: submitted, rendering, done, failed; spend vs budget; ETA."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__()
        self._console = console or Console(stderr=True)
        self._bars = RichProgress(
            TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"), TimeRemainingColumn(), console=self._console, transient=False,
        )
        self._budget: Decimal | None = None

    def start(self, total: int, budget: Decimal | None, spent: Decimal) -> None:
        super().start(total, budget, spent)
        self._budget = budget
        self._ids = {name: self._bars.add_task(name, total=max(total, 1), extra="")
                     for name in ("submitted", "rendering", "done", "failed")}
        self._bars.start()
        self.spend(spent)

    def job(self, label: str, what: str, detail: str = "") -> None:
        super().job(label, what, detail)
        rendering = self.counts["submitted"] + self.counts["tracking"] - sum(self.counts[k] for k in FINAL)
        self._bars.update(self._ids["submitted"], completed=self.counts["submitted"])
        self._bars.update(self._ids["rendering"], completed=max(0, rendering))
        self._bars.update(self._ids["done"], completed=self.counts["done"])
        failed = self.counts["failed"] + self.counts["unknown"] + self.counts["timed_out"]
        self._bars.update(self._ids["failed"], completed=failed)
        if what in ("failed", "unknown", "timed_out", "retry"):
            line = Text.assemble((one_line(label), "yellow"), f": {one_line(what)}")
            if detail:
                line.append(f" ({_detail(detail)})")
            self._console.print(line, highlight=False)

    def note(self, message: str) -> None:
        super().note(message)
        self._console.print(Text(one_line(message)), highlight=False)

    def spend(self, spent: Decimal) -> None:
        limit = f" of ${self._budget:.2f}" if self._budget is not None else ""
        self._bars.update(self._ids["done"], extra=f"spent ${spent:.2f}{limit}")

    def rendering(self, reporting: int, percent: float) -> None:
        """The service's own ``progress``, on the rendering bar: how far along its renders are."""
        super().rendering(reporting, percent)
        extra = f"{percent:.0f}% on average ({reporting} reporting)" if reporting else ""  # 0: none renders now
        self._bars.update(self._ids["rendering"], extra=extra)

    def close(self) -> None:
        self._bars.stop()


def _event_line(label: str, what: str, detail: str) -> str:
    """``label: what (detail)``, every part one inert line."""
    line = f"{one_line(label)}: {one_line(what)}"
    return f"{line} ({_detail(detail)})" if detail else line


def _detail(detail: str) -> str:
    # Bounded before it is escaped: a detail quotes the service, whose text has no limit.
    return one_line(bound(detail, MAX_SERVICE_TEXT))


def choose_progress(stream: IO[str] | None = None) -> Progress:
    """Live bars on an interactive terminal; plain lines when piped or with CI=true."""
    stream = stream or sys.stderr
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    if not ci and stream.isatty():
        return LiveProgress()
    return LineProgress(stream)
