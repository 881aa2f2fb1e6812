"""``--only PATTERN``: a target subset of a campaign's jobs, chosen by label.

A pattern is an :mod:`fnmatch` glob over job labels (``*``, ``?``, ``[abc]``,
``[!abc]``), matched case-sensitively on every system (labels are case-sensitive:
``de-DE`` is not ``de-de``). ``/`` is not special, so ``*`` crosses it: ``*/de-DE/*``
is every job of the German market whatever its shot, and ``hero/*`` every job of the
shot ``hero``. A pattern also matches every label below it, as a folder holds its
files: ``hero`` is the whole shot, ``street/ja-JP`` every cut of it; and every take and
profile of what it names (``hero/de-DE/9:16`` is ``hero/de-DE/9:16#2@draft`` too,
``hero/*#2`` every second take).

Several patterns select the jobs any of them matches. A pattern that matches no job
is a mistake (a typo would otherwise plan nothing and pass): one line per such
pattern, exit 2, with the nearest labels the manifest has.
"""

from __future__ import annotations

import difflib
import fnmatch
import heapq
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .errors import UsageError
from .models import PricedJob

__all__ = ["SUGGESTIONS", "NoMatch", "Selection", "nearest_labels"]

# How many labels a pattern that matches nothing suggests.
SUGGESTIONS = 3
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True, slots=True)
class Selection:
    """The ``--only`` patterns of one command, compiled once."""

    patterns: tuple[str, ...]
    _compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for pattern in self.patterns:
            if not pattern.strip():
                raise UsageError("--only needs a pattern over job labels, got an empty one",
                                 hint="e.g. --only 'hero/*' or --only '*/de-DE/*'")
        # fnmatch.translate, case-sensitive (fnmatch.fnmatch folds case on Windows); the
        # other alternatives are "a label below it" (``hero`` matches ``hero/en-US/9:16``)
        # and its takes and profiles (``…#2``, ``…@final``: see expand.takes).
        compiled = tuple(re.compile("|".join(f"(?:{fnmatch.translate(p + end)})" for end in ("", "/*", "#*", "@*")))
                         for p in self.patterns)
        object.__setattr__(self, "_compiled", compiled)

    @classmethod
    def of(cls, patterns: Iterable[str] | None) -> Selection | None:
        """The selection of these ``--only`` values; None when there are none (every job)."""
        found = tuple(patterns or ())
        return cls(found) if found else None

    def matches(self, label: str) -> bool:
        """Whether any pattern selects the job labelled ``label``."""
        return any(regex.match(label) for regex in self._compiled)

    def choose(self, jobs: Sequence[PricedJob]) -> tuple[PricedJob, ...]:
        """The jobs selected, in manifest order; :class:`NoMatch` when a pattern selects none."""
        hits = [False] * len(self._compiled)
        chosen = []
        for priced in jobs:
            label = priced.job.label
            found = False
            for index, regex in enumerate(self._compiled):
                if regex.match(label):
                    hits[index] = found = True
            if found:
                chosen.append(priced)
        missing = [p for p, hit in zip(self.patterns, hits, strict=True) if not hit]
        if missing:
            raise NoMatch(missing, [priced.job.label for priced in jobs])
        return tuple(chosen)

    def summary(self, selected: int, of: int) -> str:
        """``11 of 22 jobs selected by --only 'hero/*'``."""
        return f"{selected} of {of} jobs selected by {self.describe()}"

    def describe(self) -> str:
        """How the command line said it: ``--only 'hero/*' --only street/ja-JP/9:16``."""
        return " ".join(f"--only {_quoted(p)}" for p in self.patterns)


class NoMatch(UsageError):
    """Patterns of ``--only`` that match no job of the manifest: one line each, exit 2."""

    def __init__(self, patterns: Sequence[str], labels: Sequence[str]) -> None:
        self.problems = [_no_match_line(p, labels) for p in patterns]
        super().__init__(self.problems[0] if len(self.problems) == 1 else
                         f"{len(self.problems)} --only patterns match no job")

    def lines(self) -> list[str]:
        # cli.main prefixes "error: " to a lone line only; several get it here, the same way.
        if len(self.problems) == 1:
            return [self.format()]
        return [f"error: {line}" for line in self.problems]


def _no_match_line(pattern: str, labels: Sequence[str]) -> str:
    text = f"--only {_quoted(pattern)} matches no job of the manifest"
    if not labels:
        return f"{text} (it has no jobs)"
    folded = re.compile(fnmatch.translate(pattern) + "|" + fnmatch.translate(pattern + "/*"), re.IGNORECASE)
    if any(folded.match(label) for label in labels):
        text += " (labels are case-sensitive)"
    near = nearest_labels(pattern, labels)
    return f"{text}; nearest labels: {', '.join(near)}"


def nearest_labels(pattern: str, labels: Sequence[str], count: int = SUGGESTIONS) -> list[str]:
    """The labels most like ``pattern`` (difflib's ratio, ignoring case), best first.

    Each label is compared with the pattern's wildcards filled in from the label itself,
    over as many ``/`` parts as the pattern has: ``hreo/*`` against ``hero/en-US/9:16``
    compares ``hreo/en-US`` with ``hero/en-US``, so a typo in one part is what counts.
    Labels that share those parts are one candidate (the first of them stands for it),
    so a 100,000-job campaign compares a few thousand strings, not every label.
    """
    parts = pattern.lower().split("/")
    candidates: dict[str, str] = {}
    for label in labels:
        candidates.setdefault("/".join(label.lower().split("/")[:len(parts)]), label)
    matcher = difflib.SequenceMatcher(autojunk=False)
    scored: list[tuple[float, int, str]] = []
    for order, (head, label) in enumerate(candidates.items()):
        filled = _filled(parts, head.split("/"))
        matcher.set_seqs(filled, head)
        # difflib.get_close_matches' shortcut: the cheap upper bounds first.
        if len(scored) == count and (matcher.real_quick_ratio() <= scored[0][0] or matcher.quick_ratio() <= scored[0][0]):
            continue
        item = (matcher.ratio(), -order, label)
        if len(scored) < count:
            heapq.heappush(scored, item)
        elif item > scored[0]:
            heapq.heapreplace(scored, item)
    return [label for _, _, label in sorted(scored, reverse=True)]


def _filled(parts: list[str], head: list[str]) -> str:
    """The pattern's parts with each wildcard part that matches the label's part replaced by it."""
    out = []
    for index, part in enumerate(parts):
        theirs = head[index] if index < len(head) else None
        if theirs is not None and _GLOB.search(part) and fnmatch.fnmatchcase(theirs, part):
            out.append(theirs)
        else:
            out.append(part)
    return "/".join(out)


def _quoted(pattern: str) -> str:
    """A pattern as a shell would need it typed: quoted when it has glob or shell characters."""
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", pattern):
        return pattern
    return "'" + pattern.replace("'", "'\\''") + "'"
