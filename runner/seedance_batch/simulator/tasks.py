"""Simulated tasks: their fate and timing, fixed at submit, read off the clock later.

A task stores when it starts running and when it ends; its status at any moment
is a pure function of the clock (:meth:`Task.status_at`), so there is no
background work per task and thousands of tasks cost nothing while they wait.
Every random choice comes from :func:`draw`, a hash of the seed and what is
being decided, so the same seed and the same requests give the same tasks.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from statistics import NormalDist
from typing import Any

from ..models import Catalog, RenderTime, load_catalog, render_time
from .checks import MAX_SECONDS
from .config import Latency, SimulatorConfig

__all__ = ["FAILURE_MESSAGES", "Task", "draw", "make_task", "queue_seconds", "render_seconds"]

# z of the 95th percentile of a standard normal: a lognormal's p95 is exp(mu + Z95 x sigma).
Z95 = NormalDist().inv_cdf(0.95)

# Assumption: APIDot documents no failure texts; these read like what such services say.
FAILURE_MESSAGES = (
    "the output was blocked by the content safety filter",
    "rendering failed on the provider side; submit again",
    "the reference media could not be fetched",
)


def draw(seed: int, *parts: object) -> float:
    """A uniform number in [0, 1) fixed by the seed and ``parts`` (no shared RNG state)."""
    text = "|".join(str(part) for part in (seed, *parts))
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True, slots=True)
class Task:
    """One accepted submit. Times are clock seconds (the simulator's clock, epoch-based).

    ``fate`` is ``finished``, ``failed`` or ``stuck`` (running forever; ``ends_at`` is
    then when it would have ended, which its ``progress`` creeps towards).
    ``key`` is the job key of the body (``seedance_batch.expand.build.request_key``).
    ``refund`` is what a failed task gives back (credits), at ``ends_at``. ``seed`` is the
    body's ``input.seed`` (None without one): the field APIDot's own playground and client
    code send, undocumented in its public table; accepted, and echoed in status answers.
    """

    task_id: str
    key: str
    model: str
    created: float
    starts_at: float
    ends_at: float
    fate: str
    credits: int
    callback_url: str | None = None
    error_message: str | None = None
    refund: int = 0
    seed: int | None = None

    def status_at(self, now: float) -> str:
        """``not_started`` -> ``running`` -> ``finished`` | ``failed`` (never, when stuck)."""
        if now < self.starts_at:
            return "not_started"
        if self.fate == "stuck" or now < self.ends_at:
            return "running"
        return self.fate

    def progress_at(self, now: float) -> int:
        """Percent done: 0 queued, 1-99 running (a stuck task never passes 99), 100 ended."""
        if now < self.starts_at:
            return 0
        if self.fate != "stuck" and now >= self.ends_at:
            return 100
        span = self.ends_at - self.starts_at
        done = (now - self.starts_at) / span if span > 0 else 1.0
        return max(1, min(99, int(100 * done)))

    @property
    def terminal(self) -> bool:
        """Whether the task ever reaches a terminal state (and so sends a webhook)."""
        return self.fate != "stuck"

    @property
    def created_time(self) -> str:
        """Submit time as the contract shows it: ``2026-04-19T21:19:42`` (UTC)."""
        return datetime.fromtimestamp(self.created, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def render_seconds(latency: Latency, figures: RenderTime, model: str, data: Mapping[str, Any], jitter_draw: float) -> float:
    """Simulated seconds of ``running`` for one request (before ``time_scale``), from a model's ``figures``."""
    factor = figures.factor(str(data.get("resolution")))
    seconds = figures.base_seconds + figures.per_video_second * int(data.get("duration", 5)) * factor
    seconds *= latency.model_factor.get(model, 1.0)
    return seconds * (1.0 + latency.jitter * (2.0 * jitter_draw - 1.0))


def make_task(
    config: SimulatorConfig, body: Mapping[str, Any], key: str, nth: int, now: float, credits: int,
    catalog: Catalog | None = None,
) -> Task:
    """The task for the ``nth`` accepted submit of the body whose job key is ``key``.

    ``catalog`` is the simulator's model data (read from ``config.prices`` when not given):
    where each model's render figures come from.
    """
    seed = config.faults.seed
    task_id = "task-" + hashlib.blake2b(f"{seed}|{key}|{nth}".encode(), digest_size=12).hexdigest()
    fate = _fate(config, task_id)
    model, data = str(body["model"]), body["input"]
    own = render_time(catalog or load_catalog(config.prices), model, str(data.get("resolution")), int(data.get("duration", 5)))
    figures = config.latency.figures(own)
    queue = queue_seconds(config.latency, figures, draw(seed, "queue", task_id)) * config.time_scale
    running = render_seconds(config.latency, figures, model, data, draw(seed, "jitter", task_id))
    message, refund = None, 0
    if fate == "failed":
        message = FAILURE_MESSAGES[int(draw(seed, "message", task_id) * len(FAILURE_MESSAGES))]
        refund = int(credits * config.answers.refund)
    callback = body.get("callback_url")
    return Task(
        task_id=task_id,
        key=key,
        model=model,
        created=now,
        starts_at=now + queue,
        ends_at=now + queue + running * config.time_scale,
        fate=fate,
        credits=credits,
        callback_url=callback if isinstance(callback, str) and callback else None,
        seed=data.get("seed") if isinstance(data.get("seed"), int) else None,
        error_message=message,
        refund=refund,
    )


def queue_seconds(latency: Latency, figures: RenderTime, queue_draw: float) -> float:
    """Simulated seconds in ``not_started`` (before ``time_scale``): the model's fixed wait,
    or with a heavy-tailed queue a lognormal draw with the latency's median and p95."""
    if latency.queue_median is None or latency.queue_p95 is None:
        return figures.queue_seconds
    mu = math.log(latency.queue_median)
    sigma = (math.log(latency.queue_p95) - mu) / Z95
    z = NormalDist().inv_cdf(min(max(queue_draw, 1e-12), 1.0 - 1e-12))
    return min(MAX_SECONDS, math.exp(mu + sigma * z))


def _fate(config: SimulatorConfig, task_id: str) -> str:
    faults = config.faults
    roll = draw(faults.seed, "fate", task_id)
    if roll < faults.task_fail:
        return "failed"
    if roll < faults.task_fail + faults.stuck:
        return "stuck"
    return "finished"
