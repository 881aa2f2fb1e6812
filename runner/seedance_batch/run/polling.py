"""When to ask for a task's status: a :class:`PollPolicy`, chosen by name from :data:`POLL_POLICIES`.

A policy is pure arithmetic, no I/O: given what a run has seen finish, it says at
what age (service seconds since the task was created) a job's next status check
should land. The tracker (:mod:`.tracking`) asks it and keeps the schedule. Jobs
expected to render alike share a :class:`Bucket`; a policy learns per bucket,
starting from a prior: the render time expected before anything has finished, from
the model data (:func:`catalog_prior`, ``render`` in schemas/models.json).

A new policy is a new module with a class that has these four methods, and a line
in :data:`POLL_POLICIES`; ``RunSettings.poll_policy`` names the one a run uses.

All durations here are *service seconds*; the tracker multiplies them by the run's
time scale (1 for APIDot; small under ``--simulate``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ..models import Catalog, render_prior_seconds

__all__ = ["POLL_POLICIES", "Bucket", "PolicyFactory", "PollPolicy", "Prior", "catalog_prior", "make_policy"]


@dataclass(frozen=True, slots=True)
class Bucket:
    """Jobs expected to render alike."""

    model: str
    resolution: str
    duration: int


Prior = Callable[[Bucket], float]
"""The render time expected for a bucket before anything has been learned (service seconds)."""


def catalog_prior(catalog: Catalog) -> Prior:
    """The prior the model data gives (assumption: APIDot publishes no render times; the
    figures only set the first guess, which the run then corrects)."""
    known: dict[Bucket, float] = {}  # asked at every poll scheduled: worked out once per bucket

    def prior(bucket: Bucket) -> float:
        if bucket not in known:
            known[bucket] = render_prior_seconds(catalog, bucket.model, bucket.resolution, bucket.duration)
        return known[bucket]

    return prior


class PollPolicy(Protocol):
    """When to poll the jobs of each bucket, learned from the jobs seen finish."""

    def learned(self, bucket: Bucket) -> bool:
        """A job of ``bucket`` has been seen finished: :meth:`aim` is learned, not guessed."""
        ...

    def aim(self, bucket: Bucket) -> float:
        """Age at which the first poll of a job in ``bucket`` should land."""
        ...

    def next_poll(self, bucket: Bucket, late_polls: int, last_age: float | None) -> float:
        """Age for a job's next poll (``last_age`` None: its first). ``late_polls``: polls at or
        past the aim that found it still rendering."""
        ...

    def observe(self, bucket: Bucket, *, finished_at_age: float, late_polls: int, aimed_at: float | None) -> None:
        """A job was seen finished at ``finished_at_age``; ``aimed_at``: the aim its first poll went for."""
        ...


class PolicyFactory(Protocol):
    """Makes a policy (a policy's class is one): ``floor`` is the shortest gap between two
    polls of one job (``run.poll_interval``), ``prior`` the render time expected."""

    def __call__(self, *, floor: float, prior: Prior) -> PollPolicy: ...


def _render_clock() -> PolicyFactory:
    from .render_clock import RenderClock

    return RenderClock


# policy name -> its factory (imported when chosen: a policy's module is its own)
POLL_POLICIES: Mapping[str, Callable[[], PolicyFactory]] = {"render-clock": _render_clock}


def make_policy(name: str, *, floor: float, prior: Prior) -> PollPolicy:
    """The policy registered as ``name``, polling no more often than every ``floor`` seconds."""
    if name not in POLL_POLICIES:
        raise ValueError(f"no poll policy {name!r}; known: {', '.join(sorted(POLL_POLICIES))}")
    return POLL_POLICIES[name]()(floor=floor, prior=prior)
