"""Which take a job is, and which combination it is a take of: the one place the review decides it.

Several takes of a combination (the same shot and matrix values, each its own seed and
its own job) sit side by side in one cell of the contact sheet, and one of them may be
picked. A job's take number is the ``take`` field the takes feature gives a job when it
has one, else the ``#N`` suffix of its label (``hero/de-DE/9:16#2``), else 1. Its
combination is its shot and matrix values without the axes that only tell takes apart
(:data:`TAKE_AXES`: an explicit ``seed:`` axis makes takes too). The identity itself is
computed where the takes are made (:func:`seedance_batch.expand.takes.combination_id`), so
the review, ``--approved`` and the reports group takes alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from ..expand.takes import TAKE_AXES, combination_values
from ..expand.takes import combination_id as _combination_id

__all__ = ["TAKE_AXES", "JobLike", "combination_id", "combination_values", "take_of"]

# "…#2" at the end of a label: the take number the takes feature writes there.
_TAKE_SUFFIX = re.compile(r"#([1-9][0-9]{0,5})$")


class JobLike(Protocol):
    """What the review reads of a job (an expanded job; the takes feature may add ``take``)."""

    @property
    def shot(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def combination(self) -> Mapping[str, Any]: ...


def take_of(job: JobLike) -> int:
    """The job's take number (1 for a combination rendered once)."""
    take = getattr(job, "take", None)
    if isinstance(take, int) and not isinstance(take, bool) and take >= 1:
        return take
    found = _TAKE_SUFFIX.search(job.label)
    return int(found.group(1)) if found else 1


def combination_id(job: JobLike) -> str:
    """The identity of the job's combination: the same for every take of it, in every profile.

    A digest of the shot and the raw matrix values (not their shown, redacted form: two
    signed URLs that differ only in their query are two combinations), so the ledger
    holds no value of the manifest, only which takes belong together.
    """
    return _combination_id(job.shot, job.combination)
