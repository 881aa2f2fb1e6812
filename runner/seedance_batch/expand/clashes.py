"""Two jobs that would be one: the same label, the same request, the same file, or a file that is a folder.

The same request is one job, paid for once (a draft and its final that are the same
request are a profile that changes nothing); two jobs writing one file (file names
that differ only in case are one file) or a file another job needs as a folder
(``x.mp4`` and ``x.mp4/y.mp4``) would lose a video.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ManifestError, RepeatedProblems

if TYPE_CHECKING:
    from .build import Job

__all__ = ["clashes"]


def clashes(jobs: Sequence[Job], nested: bool = True) -> list[ManifestError]:
    """Two jobs with one label, one request, or one output file; a file that is another job's folder.

    One clash repeated across a shot's jobs (every job writing ``same.mp4``) is one
    line, saying how many more there are. ``nested=False`` skips the folder check.
    """
    if _all_distinct(jobs, nested):
        return []
    problems = RepeatedProblems("more like it")
    labels: dict[str, Job] = {}
    keys: dict[str, Job] = {}
    files: dict[str, Job] = {}
    for job in jobs:
        first = labels.setdefault(job.label, job)
        if first is not job:
            _clash(problems, "label", first, job, f"two jobs have the label {job.label!r}; "
                   "give the include entries a value that tells them apart")
            continue
        first = keys.setdefault(job.key, job)
        if first is not job and first.profile != job.profile:
            _clash(problems, "profiles", first, job,
                   f"jobs {first.label!r} and {job.label!r} make the identical request (key {job.key[:12]}): the "
                   f"shot's own parameters override everything profiles {first.profile!r} and {job.profile!r} differ "
                   "in; set those per profile in the shot's profiles: instead, so each profile renders its own")
        elif first is not job:
            _clash(problems, "request", first, job,
                   f"jobs {first.label!r} and {job.label!r} make the identical request (key {job.key[:12]}); "
                   "the same request is one job and is paid for once; "
                   "use the value that tells them apart in the prompt or a parameter, or drop one of them")
        first = files.setdefault(job.output_path.casefold(), job)
        if first is not job:
            alike = _look_alike(first.label, job.label)
            advice = "keep one of the two values" if alike else (
                "put {{ slug }} or another distinguishing value in output.filename")
            _clash(problems, "file", first, job,
                   f"jobs {first.label!r} and {job.label!r} would write the same file {job.output_path!r}{alike}; {advice}")
    folders = _folders(jobs) if nested else {}
    for job in jobs:
        inner = folders.get(job.output_path.casefold())
        if inner is not None:
            _clash(problems, "folder", job, inner,
                   f"job {job.label!r} writes the file {job.output_path!r}, which job {inner.label!r} needs as a folder "
                   f"for {inner.output_path!r}; give the two different names in output.filename")
    return problems.errors()


def _look_alike(a: str, b: str) -> str:
    """Why two jobs whose labels differ write one file when they look alike: one text in two Unicode forms."""
    if a != b and unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b):
        return " (their values are one text in two Unicode forms, NFC and NFD: file names are NFC)"
    return ""


def _clash(problems: RepeatedProblems, kind: str, first: Job, job: Job, message: str) -> None:
    problems.add((kind, first.shot, job.shot), message, job.location, job.label)


def _folders(jobs: Sequence[Job]) -> dict[str, Job]:
    """Every folder some job's file is in (casefolded), with the first such job: linear in the paths."""
    folders: dict[str, Job] = {}
    for job in jobs:
        path = job.output_path.casefold()
        cut = path.rfind("/")
        while cut > 0 and path[:cut] not in folders:  # a folder seen before brings its parents with it
            folders[path[:cut]] = job
            cut = path.rfind("/", 0, cut)
    return folders


def _all_distinct(jobs: Sequence[Job], nested: bool) -> bool:
    # The usual answer, found at set speed; only a clash needs the slower walk that names both jobs.
    n = len(jobs)
    if len({job.label for job in jobs}) != n or len({job.key for job in jobs}) != n:
        return False
    files = {job.output_path.casefold() for job in jobs}
    return len(files) == n and not (nested and _a_folder_is_a_file(files))


def _a_folder_is_a_file(files: set[str]) -> bool:
    """Whether a folder of one (casefolded) path is another path: each folder looked up once."""
    seen: set[str] = set()
    for path in files:
        cut = path.rfind("/")
        while cut > 0 and (folder := path[:cut]) not in seen:
            if folder in files:
                return True
            seen.add(folder)
            cut = path.rfind("/", 0, cut)
    return False
