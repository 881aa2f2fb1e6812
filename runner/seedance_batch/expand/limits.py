"""How big a manifest's expansion is, counted before any combination is built.

More than :data:`MAX_JOBS` jobs or :data:`MAX_INCLUDE_MERGES` include merges is
one error line, found in milliseconds
(:func:`~seedance_batch.expand.matrix.matrix_size`), instead of minutes and gigabytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ManifestError
from ..manifest import Manifest, ManifestPath, Shot
from .space import WORK_LIMIT, MatrixTooComplex

if TYPE_CHECKING:
    from .shots import SharedMatrix

__all__ = ["MAX_INCLUDE_MERGES", "MAX_JOBS", "within_limits"]

# The most jobs one manifest may expand to, counted before any is built: half as
# many again as the 100,000 bench/plan_scale.py plans. Measured on the 2-core
# reference VM, the worst manifests at these limits (MAX_AXES axes in every shot's
# own matrix, includes merging everywhere, MAX_EXPANDED_BYTES of text) validate in
# about 4.5 s and 360 MB: inside the promise that validate ends within 10 s and
# 500 MB whatever the manifest, with room for the VM's drift. A bigger campaign is
# several manifests.
MAX_JOBS = 150_000
# The most (combination, include entry) merges one manifest may ask for: each adds a
# key to a combination and an entry to its list of includes. Two per job at MAX_JOBS;
# an entry naming no axis merges into every combination, and a thousand of them on a
# big matrix would otherwise take minutes and gigabytes.
MAX_INCLUDE_MERGES = 300_000


def within_limits(manifest: Manifest, chosen: Sequence[tuple[Shot, SharedMatrix]], errors: list[ManifestError]) -> bool:
    """Whether the jobs and include merges of ``chosen`` fit the limits; the problem added to ``errors`` if not."""
    jobs: dict[ManifestPath, list[int]] = {}  # per matrix: [jobs, shots]
    merges, counted = 0, set()
    busiest: tuple[int, ManifestPath, int] = (0, ("matrix",), 0)  # merges, matrix, include entry
    for shot, matrix in chosen:
        key = matrix.key(shot.id)
        try:
            size = matrix.size(key)
        except MatrixTooComplex:
            errors.append(ManifestError(
                f"the exclude entries of this matrix overlap in too many ways to work out which combinations are left "
                f"(more than {WORK_LIMIT:,} steps); write fewer, broader entries or split the matrix",
                location=manifest.locate((*matrix.path, "exclude")),
            ))
            return False
        counts = jobs.setdefault(matrix.path, [0, 0])
        counts[0] += size.combinations
        counts[1] += 1
        if (matrix.path, key) not in counted:  # shots sharing one build merge once
            counted.add((matrix.path, key))
            merges += size.merges
            if size.busiest is not None and size.busiest_merges > busiest[0]:
                busiest = (size.busiest_merges, matrix.path, size.busiest)
    total = sum(n for n, _ in jobs.values())
    if total > MAX_JOBS:
        errors.append(_too_many_jobs(manifest, total, jobs, {m.path: m for _, m in chosen}))
    elif merges > MAX_INCLUDE_MERGES:
        errors.append(_too_many_merges(manifest, merges, busiest))
    return total <= MAX_JOBS and merges <= MAX_INCLUDE_MERGES


def _too_many_jobs(
    manifest: Manifest, total: int, jobs: dict[ManifestPath, list[int]], matrices: dict[ManifestPath, SharedMatrix]
) -> ManifestError:
    """The job-limit error, at the matrix that makes the most jobs."""
    path = max(jobs, key=lambda p: jobs[p][0])
    made, shots = jobs[path]
    axes = matrices[path].axes
    sizes = " x ".join(f"{len(axis.values):,}" for axis in axes)
    plural = "s" if shots != 1 else ""
    if not axes:
        what, where = f"{shots:,} shot{plural} without axes", manifest.locate(("shots",))
        what = what if made == total else f"{made:,} of them from {what}"
    else:
        what, where = f": {sizes} values for {shots:,} shot{plural}", manifest.locate(path)
        what = "this matrix" + (what if made == total else f" makes {made:,} of them{what}")
    return ManifestError(
        f"the manifest expands to {total:,} jobs, more than the limit of {MAX_JOBS:,} ({what})",
        location=where, hint="split the campaign into several manifests, or exclude combinations",
    )


def _too_many_merges(manifest: Manifest, merges: int, busiest: tuple[int, ManifestPath, int]) -> ManifestError:
    most, path, entry = busiest
    return ManifestError(
        f"the include entries merge into combinations {merges:,} times, more than the limit of "
        f"{MAX_INCLUDE_MERGES:,} (this entry alone merges into {most:,}); name the axis values each entry is for, "
        "or put what every job shares in vars",
        location=manifest.locate((*path, "include", entry)),
    )
