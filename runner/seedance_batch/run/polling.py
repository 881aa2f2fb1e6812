"""When to ask for a task's status: a :class:`PollPolicy`, chosen by name from :data:`POLL_POLICIES`.

A policy is pure arithmetic, no I/O: given what the run has seen of one job
(:class:`Seen`: its answers so far, their ages, the ``progress`` they carried) and
what it has learned from the jobs seen end, it says at what age (service seconds
since the task was created) the job's next status check should land, and how likely
the task is to have ended by a given age (:meth:`PollPolicy.chance_finished`: when
status calls are scarcer than due polls, the tracker spends them on the jobs most
likely finished). The tracker (:mod:`.tracking`) asks it and keeps the schedule.

Jobs expected to render alike share a :class:`Bucket`; a policy learns per bucket,
starting from a prior: the render time expected before anything has finished, from
the model data (:func:`catalog_prior`, ``render`` in schemas/models.json).

A new policy is a new module with a class that has these methods, and a line in
:data:`POLL_POLICIES`; ``RunSettings.poll_policy`` names the one a run uses without
callbacks, ``RunSettings.webhook_poll_policy`` the one with them (the safety net).

All durations here are *service seconds*; the tracker multiplies them by the run's
time scale (1 for APIDot; small under ``--simulate``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from ..models import Catalog, render_prior_seconds

__all__ = [
    "POLL_POLICIES", "QUEUED_WORDS", "Bucket", "Next", "PolicyFactory", "PollPolicy", "Prior", "Seen",
    "catalog_prior", "make_policy",
]

# The words of a task still waiting for a renderer (the contract's ``not_started``).
QUEUED_WORDS = frozenset({"not_started", "queued", "pending"})
# Progress samples a job keeps (the last few answers that carried one while it ran).
SAMPLES_KEPT = 3


@dataclass(frozen=True, slots=True)
class Bucket:
    """Jobs expected to render alike."""

    model: str
    resolution: str
    duration: int


@dataclass(frozen=True, slots=True)
class Seen:
    """What the run has seen of one job's task, as a policy reads it (ages in service seconds).

    ``aimed``: the age by which the policy expected the task to have ended when it
    scheduled the poll under way (None: an exploratory poll); ``late_polls``: polls at
    or past their aim that found it still rendering. ``samples``: the last few
    ``(age, progress)`` of answers that found it running with a progress (0-100).
    ``hinted``: a callback said it ended (a status check is due at once). ``planned``: the
    age the poll under way was planned for (it may run later, when status calls are scarce).
    """

    bucket: Bucket
    polls: int = 0
    last_age: float | None = None
    queued_until: float | None = None
    running_from: float | None = None
    samples: tuple[tuple[float, float], ...] = ()
    aimed: float | None = None
    late_polls: int = 0
    hinted: bool = False
    planned: float | None = None

    def answered(self, age: float, status: str, progress: float | None) -> Seen:
        """This record after an answer at ``age`` that found the task still going."""
        late = self.late_polls + (1 if self.aimed is not None and age >= self.aimed else 0)
        queued = status in QUEUED_WORDS and not progress
        samples = self.samples
        if not queued and progress is not None and 0 < progress < 100:
            samples = (*samples, (age, float(progress)))[-SAMPLES_KEPT:]
        return replace(self, polls=self.polls + 1, last_age=age, late_polls=late, hinted=False,
                       queued_until=age if queued else self.queued_until,
                       running_from=self.running_from if queued or self.running_from is not None else age,
                       samples=samples)


@dataclass(frozen=True, slots=True)
class Next:
    """A policy's answer: the age of the next poll, and the age by which it expects the task ended."""

    age: float
    aimed: float | None = None


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
    """When to poll each job, learned from the jobs seen end."""

    def learned(self, bucket: Bucket) -> bool:
        """Something about ``bucket`` has been learned (jobs waiting for a first poll are re-aimed once)."""
        ...

    def next_poll(self, seen: Seen) -> Next:
        """When the job's next poll should land (``seen.last_age`` None: its first)."""
        ...

    def chance_finished(self, seen: Seen, age: float) -> float:
        """How likely (0 to 1) the task has ended by ``age``: what a status call on it would buy."""
        ...

    def observe(self, seen: Seen, *, finished_at_age: float) -> None:
        """The job was seen ended at ``finished_at_age`` (``seen``: everything before that answer)."""
        ...


class PolicyFactory(Protocol):
    """Makes a policy (a policy's class is one): ``floor`` is the shortest gap between two
    polls of one job (``run.poll_interval``), ``prior`` the render time expected."""

    def __call__(self, *, floor: float, prior: Prior) -> PollPolicy: ...


def _render_clock() -> PolicyFactory:
    from .render_clock import RenderClock

    return RenderClock


def _progress_clock() -> PolicyFactory:
    from .progress_clock import ProgressClock

    return ProgressClock


def _safety_net() -> PolicyFactory:
    from .safety_net import SafetyNet

    return SafetyNet


# policy name -> its factory (imported when chosen: a policy's module is its own)
POLL_POLICIES: Mapping[str, Callable[[], PolicyFactory]] = {
    "progress-clock": _progress_clock,
    "render-clock": _render_clock,
    "safety-net": _safety_net,
}


def make_policy(name: str, *, floor: float, prior: Prior) -> PollPolicy:
    """The policy registered as ``name``, polling no more often than every ``floor`` seconds."""
    if name not in POLL_POLICIES:
        raise ValueError(f"no poll policy {name!r}; known: {', '.join(sorted(POLL_POLICIES))}")
    return POLL_POLICIES[name]()(floor=floor, prior=prior)
