"""Which source media URLs the jobs use, and where the manifest wrote each (pure).

A campaign of 500 jobs may share 20 URLs: each distinct URL is asked about once,
and each problem is reported once per place in the manifest that produced it, with
the jobs it would have failed (``used by 12 jobs: hero/de-DE/9:16 and 11 more``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import Location, ManifestError
from ..models import MediaKind, MediaLimits
from ..safetext import bound
from .records import Facts

if TYPE_CHECKING:
    from ..expand import Job

__all__ = ["MediaUse", "fit_problem", "media_errors", "media_uses", "shown_url"]

MIB = 1 << 20
# The longest URL a message shows (its query string is never shown: see shown_url).
SHOWN_URL_CHARS = 200


@dataclass(frozen=True, slots=True)
class MediaUse:
    """One use of a URL: a job's field, the URL's place in its list, and where the manifest wrote it."""

    field: str
    index: int
    label: str
    origin: Location


def media_uses(jobs: Iterable[Job], limits: MediaLimits) -> dict[str, list[MediaUse]]:
    """Every distinct URL in the jobs' media fields, with its uses, in job order."""
    uses: dict[str, list[MediaUse]] = {}
    fields = tuple(limits.fields)
    for job in jobs:
        data = job.input
        for field in fields:
            urls = data.get(field)
            if not isinstance(urls, (list, tuple)) or not urls:
                continue
            origin = job.origins.get(field, job.location)
            for index, url in enumerate(urls):
                if isinstance(url, str):
                    uses.setdefault(url, []).append(MediaUse(field, index, job.label, origin))
    return uses


def fit_problem(facts: Facts, kind: MediaKind, field: str) -> str | None:
    """What is wrong with a file for a field that takes ``kind`` (its type, its size); None: it fits."""
    if facts.content_type is None:
        return f"the host says no Content-Type; {field} takes {kind.shown_types}"
    if not kind.accepts(facts.content_type):
        return f"is {facts.content_type}; {field} takes {kind.shown_types}"
    if facts.size == 0:
        return "is empty (0 bytes)"
    if facts.size is not None and facts.size > kind.max_bytes:
        return f"is {facts.size / MIB:.1f} MiB; {kind.name} files may be at most {kind.shown_limit}"
    return None


def media_errors(uses: Mapping[str, Sequence[MediaUse]],
                 problem_of: Callable[[str, MediaUse], str | None]) -> list[ManifestError]:
    """One error per URL, problem and place in the manifest, naming the jobs it concerns."""
    groups: dict[tuple[str, Location, str, int, str], list[str]] = {}
    for url, its in uses.items():
        for use in its:
            problem = problem_of(url, use)
            if problem is not None:
                groups.setdefault((url, use.origin, use.field, use.index, problem), []).append(use.label)
    return [_error(url, origin, field, index, problem, labels)
            for (url, origin, field, index, problem), labels in groups.items()]


def shown_url(url: str) -> str:
    """A URL as every message shows it: query, fragment and credentials redacted, bounded."""
    from ..report.redact import redact_url  # here: the report package costs plan 90 ms to import

    return bound(redact_url(url), SHOWN_URL_CHARS)


def _error(url: str, origin: Location, field: str, index: int, problem: str, labels: list[str]) -> ManifestError:
    path = origin.path
    if path is not None and path.endswith(field):
        path = f"{path}[{index}]"  # the field as written: which of its URLs
    where = Location(origin.file, origin.line, origin.col, path)
    return ManifestError(f"{shown_url(url)}: {problem}", location=where, hint=f"used by {_jobs(labels)}")


def _jobs(labels: list[str]) -> str:
    """``1 job: a``, ``2 jobs: a and b``, ``12 jobs: a and 11 more``."""
    if len(labels) == 1:
        return f"1 job: {labels[0]}"
    if len(labels) == 2:
        return f"2 jobs: {labels[0]} and {labels[1]}"
    return f"{len(labels)} jobs: {labels[0]} and {len(labels) - 1} more"
