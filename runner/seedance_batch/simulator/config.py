"""Every knob of the simulator, as frozen data.

Clocks: the simulated service's clock runs ``1 / time_scale`` times faster than
the real one. Every duration the service owns is in service seconds and is
multiplied by ``time_scale``: render times (a 60 s render takes 0.06 s at 0.001),
the per-minute rate-limit windows, URL lifetime, webhook delays. This matches the
runner's ``--time-scale``, which compresses its own pacing the same way. Two
things stay in real seconds, because what they are measured against is real:
``Retry-After`` (what the client should wait, whole seconds, at least 1) and the
answers held back to outlast a client's request timeout (``slow_seconds``,
``hang_seconds``).

Faults are all off by default. Each one is decided by a seeded hash of what
the request is (the body's job key and how many times that body was sent, or
the task id and how many times its status was asked), never by arrival order,
so the same requests meet the same faults under any concurrency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType

from ..errors import UsageError
from ..models import RenderTime

__all__ = [
    "MAX_CREDITS", "MAX_PER_MINUTE", "MAX_SECONDS", "MAX_TIME_SCALE", "MIN_TIME_SCALE",
    "Faults", "Latency", "SimulatorConfig", "WebhookFaults", "parse_knobs",
]

# time_scale, real seconds per service second: 1e-6 runs a service day in 86 ms (the
# clocks' resolution ends there), 1000 a 60 s render in 17 hours (nobody waits longer).
# Infinity would overflow every deadline. cli.py's --time-scale options repeat these.
MIN_TIME_SCALE = 1e-6
MAX_TIME_SCALE = 1000.0
# Any duration knob, in seconds: a month outlasts everything the service keeps (media
# 3 days), and keeps every deadline a finite float whatever the time scale.
MAX_SECONDS = 30 * 86400.0
# A balance beyond 64 bits cannot be stored or reported; a rate beyond a million a minute
# is no limit a client can meet (and would overflow a float when huge).
MAX_CREDITS = 2**63 - 1
MAX_PER_MINUTE = 1_000_000

# Request faults in the order one uniform draw is split between them.
REQUEST_FAULTS = ("server_error", "drop", "malformed", "error_code", "slow", "ambiguous_submit")
ENDPOINTS = frozenset({"submit", "status"})


def _frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class Latency:
    """How long a task takes, in simulated seconds (before ``time_scale``).

    queued for ``queue_seconds`` (``not_started``), then ``running`` for
    ``(base_seconds + per_video_second x duration x resolution factor) x model
    factor``, each stretched by a uniform jitter of +/- ``jitter`` (a fraction).
    A figure left None is the model's own: its ``render`` figures in
    schemas/models.json (or the simulator's ``prices``), the data the runner's
    first status request aims with; a figure set here applies to every model.
    ``model_factor`` stretches some models' running time further (none by default).
    Assumption: APIDot publishes no render times; the figures are plausible for
    Seedance 2, not measurements.
    """

    queue_seconds: float | None = None
    base_seconds: float | None = None
    per_video_second: float | None = None
    resolution_factor: Mapping[str, float] | None = None
    model_factor: Mapping[str, float] = field(default_factory=lambda: _frozen({}))
    jitter: float = 0.25

    def figures(self, model: RenderTime) -> RenderTime:
        """A model's render figures with the ones set here instead of its own."""
        return RenderTime(
            queue_seconds=model.queue_seconds if self.queue_seconds is None else self.queue_seconds,
            base_seconds=model.base_seconds if self.base_seconds is None else self.base_seconds,
            per_video_second=model.per_video_second if self.per_video_second is None else self.per_video_second,
            resolution_factor=model.resolution_factor if self.resolution_factor is None else self.resolution_factor,
        )


@dataclass(frozen=True, slots=True)
class Faults:
    """Request faults (rates are probabilities per request) and task fates.

    server_error      answer 500/502/503 before doing anything
    drop              close the connection before doing anything, no answer
    malformed         HTTP 200 whose body is not JSON, nothing done
    error_code        HTTP 200 with ``{"code": 500, ...}`` inside, nothing done
    slow              do the work, then hold the answer ``slow_seconds``
    ambiguous_submit  (submit only) create the task, then never answer: hold the
                      connection ``hang_seconds`` (or until shutdown) and drop it
    task_fail         the task ends ``failed`` with an error_message
    task_stuck        the task stays ``running`` forever

    Every request fault except ``slow`` and ``ambiguous_submit`` leaves no task
    behind, so a client that retries it is right to. ``on`` limits request
    faults to some endpoints (``submit``, ``status``).
    """

    seed: int = 0
    server_error: float = 0.0
    drop: float = 0.0
    malformed: float = 0.0
    error_code: float = 0.0
    slow: float = 0.0
    ambiguous_submit: float = 0.0
    task_fail: float = 0.0
    task_stuck: float = 0.0
    slow_seconds: float = 30.0
    hang_seconds: float = 600.0
    on: frozenset[str] = ENDPOINTS

    def __post_init__(self) -> None:
        for name in (*REQUEST_FAULTS, "task_fail", "task_stuck"):
            _check_rate(f"faults.{name}", getattr(self, name))
        _check_total("request fault rates", sum(getattr(self, name) for name in REQUEST_FAULTS))
        _check_total("task_fail + task_stuck", self.task_fail + self.task_stuck)
        _check_seconds("faults.slow_seconds", self.slow_seconds)
        _check_seconds("faults.hang_seconds", self.hang_seconds)
        unknown = set(self.on) - ENDPOINTS
        if unknown:
            raise UsageError(f"faults.on: unknown endpoint(s) {', '.join(sorted(unknown))}", hint="use submit, status")
        object.__setattr__(self, "on", frozenset(self.on))

    @property
    def any_request_fault(self) -> bool:
        """Whether any request fault is on (else no request pays for a draw)."""
        return any(getattr(self, name) for name in REQUEST_FAULTS)


@dataclass(frozen=True, slots=True)
class WebhookFaults:
    """How callback deliveries misbehave (all off by default).

    duplicate     probability that an event is delivered twice
    delay         probability that an event is held back ``delay_seconds`` (service seconds)
    out_of_order  probability that a stale ``running`` event follows the terminal
                  one (assumption: the contract only shows terminal events; this
                  exists to prove receivers never move a task backwards)
    shape         ``nested`` (``{"data": {...}}``) or ``flat``, both seen in the wild
    """

    duplicate: float = 0.0
    delay: float = 0.0
    delay_seconds: float = 2.0
    out_of_order: float = 0.0
    shape: str = "nested"

    def __post_init__(self) -> None:
        for name in ("duplicate", "delay", "out_of_order"):
            _check_rate(f"webhooks.{name}", getattr(self, name))
        _check_seconds("webhooks.delay_seconds", self.delay_seconds)
        if self.shape not in ("nested", "flat"):
            raise UsageError(f"webhooks.shape: unknown shape {self.shape!r}", hint="use nested or flat")


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything the simulator can be told; the defaults behave like a healthy service.

    key_prefix           any Bearer key starting with this is accepted...
    api_key              ...unless an exact key is set, then only that one is
    time_scale           real seconds per service second (0.001: a 60 s render -> 0.06 s)
    url_ttl              service seconds a result file URL stays valid (403 after)
    credits              starting balance in credits; None means unlimited
    submits_per_minute   at most this many submits in any 60 service seconds (None: no limit)
    status_per_minute    the same for status calls
    prices               a model/price file to use instead of the bundled one
    """

    key_prefix: str = "sk-sim"
    api_key: str | None = None
    time_scale: float = 1.0
    latency: Latency = field(default_factory=Latency)
    url_ttl: float = 24 * 3600.0
    credits: int | None = None
    submits_per_minute: int | None = None
    status_per_minute: int | None = None
    faults: Faults = field(default_factory=Faults)
    webhooks: WebhookFaults = field(default_factory=WebhookFaults)
    prices: Path | str | None = None

    def __post_init__(self) -> None:
        if not self.time_scale > 0:
            raise UsageError(f"time_scale must be above 0, got {self.time_scale!r}")
        if not MIN_TIME_SCALE <= self.time_scale <= MAX_TIME_SCALE:
            raise UsageError(f"time_scale must be from {MIN_TIME_SCALE:g} to {MAX_TIME_SCALE:g} real seconds per "
                             f"service second, got {self.time_scale!r}")
        if not self.url_ttl > 0:
            raise UsageError(f"url_ttl must be above 0 seconds, got {self.url_ttl!r}")
        _check_seconds("url_ttl", self.url_ttl)
        if self.credits is not None and not 0 <= self.credits <= MAX_CREDITS:
            raise UsageError(f"credits must be from 0 to {MAX_CREDITS}, got {self.credits!r}")
        for name in ("submits_per_minute", "status_per_minute"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be 1 or more, got {value!r}", hint="leave it unset for no limit")
            if value is not None and value > MAX_PER_MINUTE:
                raise UsageError(f"{name} must be at most {MAX_PER_MINUTE}, got {value!r}",
                                 hint="leave it unset for no limit")

    def summary(self) -> dict[str, object]:
        """The knobs as plain JSON-able data (shown in /_sim/stats); the exact key is masked."""
        out: dict[str, object] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "api_key":
                value = None if value is None else "***"
            elif item.name in ("latency", "faults", "webhooks"):
                value = {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
            out[item.name] = _plain(value)
        return out


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"{name} must be a probability from 0 to 1, got {value!r}")


def _check_seconds(name: str, value: float) -> None:
    if not value >= 0:  # also refuses NaN, which every comparison fails
        raise UsageError(f"{name} must be 0 or more seconds, got {value!r}")
    if value > MAX_SECONDS:  # infinity too
        raise UsageError(f"{name} must be at most {MAX_SECONDS:.0f} seconds, got {value!r}")


def _check_total(what: str, total: float) -> None:
    if total > 1.0 + 1e-9:
        raise UsageError(f"{what} add up to {total:g}; they must add up to at most 1")


def parse_knobs(pairs: Iterable[str], cls: type, *, flag: str) -> dict[str, object]:
    """``["drop=0.1", "slow_seconds=5"]`` -> keyword arguments for ``cls`` (Faults, WebhookFaults).

    Values take the type of the field's default; ``seed`` and ``on`` are not settable here.
    """
    settable = {f.name: f.default for f in fields(cls) if f.name not in ("seed", "on")}
    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in settable:
            raise UsageError(f"{flag} {pair!r}: expected NAME=VALUE", hint=f"NAME is one of: {', '.join(settable)}")
        if isinstance(settable[name], str):
            out[name] = text.strip()
            continue
        try:
            out[name] = float(text)
        except ValueError:
            raise UsageError(f"{flag} {pair!r}: {text.strip()!r} is not a number") from None
    return out
