"""Every knob of the simulator, as frozen data.

Clocks: the simulated service's clock runs ``1 / time_scale`` times faster than
the real one. Every duration the service owns is in service seconds and is
multiplied by ``time_scale``: render times (a 60 s render takes 0.06 s at 0.001),
the per-minute rate-limit windows, URL lifetime, webhook delays. This matches the
runner's ``--time-scale``, which compresses its own pacing the same way. Two
things stay in real seconds, because what they are measured against is real:
``Retry-After`` (what the client should wait, whole seconds, at least 1; sent only
with ``retry_after=True``), the answers held back to outlast a client's request
timeout (``slow_seconds``, ``hang_seconds``) and a signed webhook's
``timestamp_offset``.

The defaults are the service as the contract describes it (``/work/shared/apidot-contract.md``):
10 s fixed rate windows without Retry-After, file URLs valid 3 days, 0.5% of tasks that
never finish, the answer shapes seen in the wild (:class:`Answers`). Request faults are
all off by default. Each one is decided by a seeded hash of what
the request is (the body's job key and how many times that body was sent, or
the task id and how many times its status was asked), never by arrival order,
so the same requests meet the same faults under any concurrency.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType

from ..errors import UsageError
from ..models import RenderTime
from .checks import MAX_SECONDS, check_rate, check_seconds, check_secret, check_total
from .knobs import parse_knobs

__all__ = [
    "LIMIT_MODES", "MAX_CREDITS", "MAX_PER_MINUTE", "MAX_SECONDS", "MAX_TIME_SCALE", "MIN_TIME_SCALE",
    "STUCK_RATE", "Answers", "Faults", "Latency", "SimulatorConfig", "WebhookFaults", "parse_knobs",
]

# time_scale, real seconds per service second: 1e-6 runs a service day in 86 ms (the
# clocks' resolution ends there), 1000 a 60 s render in 17 hours (nobody waits longer).
# Infinity would overflow every deadline. cli.py's --time-scale options repeat these.
MIN_TIME_SCALE = 1e-6
MAX_TIME_SCALE = 1000.0
# A balance beyond 64 bits cannot be stored or reported; a rate beyond a million a minute
# is no limit a client can meet (and would overflow a float when huge).
MAX_CREDITS = 2**63 - 1
MAX_PER_MINUTE = 1_000_000

# Request faults in the order one uniform draw is split between them.
REQUEST_FAULTS = ("server_error", "drop", "malformed", "error_code", "slow", "ambiguous_submit")
ENDPOINTS = frozenset({"submit", "status"})
# How a rate window counts (see simulator/limits.py): the contract's "fixed window per user",
# read two ways, and the sliding window earlier versions of this simulator had.
LIMIT_MODES = ("fixed", "lockout", "sliding")
# The contract: some tasks never finish. 0.5% is the figure (an assumption: nothing is published).
STUCK_RATE = 0.005


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

    ``queue_median`` and ``queue_p95`` (set both) replace the fixed queue wait with a
    heavy-tailed one: each task waits in ``not_started`` for a lognormal time with that
    median and 95th percentile (seeded per task). The contract says congested tasks can
    sit in ``not_started`` for minutes (APIDot re-dispatches them); median 10 s and p95
    180 s are the issue's figures for that, not measurements.
    """

    queue_seconds: float | None = None
    base_seconds: float | None = None
    per_video_second: float | None = None
    resolution_factor: Mapping[str, float] | None = None
    model_factor: Mapping[str, float] = field(default_factory=lambda: _frozen({}))
    jitter: float = 0.25
    queue_median: float | None = None
    queue_p95: float | None = None

    def __post_init__(self) -> None:
        if (self.queue_median is None) != (self.queue_p95 is None):
            raise UsageError("latency: set queue_median and queue_p95 together (a heavy-tailed queue needs both)")
        if self.queue_median is not None and self.queue_p95 is not None:
            check_seconds("latency.queue_median", self.queue_median)
            check_seconds("latency.queue_p95", self.queue_p95)
            if not 0 < self.queue_median <= self.queue_p95:
                raise UsageError(f"latency: queue_median must be above 0 and at most queue_p95, got "
                                 f"{self.queue_median!r} and {self.queue_p95!r}")

    @property
    def heavy_queue(self) -> bool:
        """Whether the queue wait is drawn from the heavy-tailed (lognormal) distribution."""
        return self.queue_median is not None

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
    task_fail         the task ends ``failed`` with an error_message (refunded: see :class:`Answers`)
    task_stuck        the task stays ``running`` forever. None (the default): 0.5%
                      (:data:`STUCK_RATE`), as the real service has some, or less when
                      ``task_fail`` leaves less room; set 0 where every task must end

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
    task_stuck: float | None = None
    slow_seconds: float = 30.0
    hang_seconds: float = 600.0
    on: frozenset[str] = ENDPOINTS

    def __post_init__(self) -> None:
        for name in (*REQUEST_FAULTS, "task_fail"):
            check_rate(f"faults.{name}", getattr(self, name))
        check_total("request fault rates", sum(getattr(self, name) for name in REQUEST_FAULTS))
        if self.task_stuck is not None:
            check_rate("faults.task_stuck", self.task_stuck)
            check_total("task_fail + task_stuck", self.task_fail + self.task_stuck)
        check_seconds("faults.slow_seconds", self.slow_seconds)
        check_seconds("faults.hang_seconds", self.hang_seconds)
        unknown = set(self.on) - ENDPOINTS
        if unknown:
            raise UsageError(f"faults.on: unknown endpoint(s) {', '.join(sorted(unknown))}", hint="use submit, status")
        object.__setattr__(self, "on", frozenset(self.on))

    @property
    def stuck(self) -> float:
        """The share of tasks that never finish, the default applied."""
        if self.task_stuck is not None:
            return self.task_stuck
        return min(STUCK_RATE, 1.0 - self.task_fail)

    @property
    def any_request_fault(self) -> bool:
        """Whether any request fault is on (else no request pays for a draw)."""
        return any(getattr(self, name) for name in REQUEST_FAULTS)


@dataclass(frozen=True, slots=True)
class WebhookFaults:
    """How callback deliveries behave and misbehave (all off by default).

    duplicate         probability that an event is delivered twice
    delay             probability that an event is held back ``delay_seconds`` (service seconds)
    out_of_order      probability that a stale ``running`` event follows the terminal
                      one (assumption: the contract only shows terminal events; this
                      exists to prove receivers never move a task backwards)
    drop              probability that an event is lost: never sent (1: every callback
                      is lost, to prove a run still finishes by polling)
    shape             ``nested`` (``{"data": {...}}``) or ``flat``, both seen in the wild
    secret            sign every delivery the Standard Webhooks way (``webhook-id``,
                      ``webhook-timestamp``, ``webhook-signature``) with this
                      ``whsec_``-prefixed base64 secret; None (the default, as APIDot
                      today: no signature is documented) sends none
    bad_signature     probability that a signed delivery carries a wrong signature
    timestamp_offset  real seconds added to ``webhook-timestamp`` (negative: a stale,
                      replayed-looking delivery)
    """

    duplicate: float = 0.0
    delay: float = 0.0
    delay_seconds: float = 2.0
    out_of_order: float = 0.0
    drop: float = 0.0
    shape: str = "nested"
    secret: str | None = None
    bad_signature: float = 0.0
    timestamp_offset: float = 0.0

    def __post_init__(self) -> None:
        for name in ("duplicate", "delay", "out_of_order", "drop", "bad_signature"):
            check_rate(f"webhooks.{name}", getattr(self, name))
        check_seconds("webhooks.delay_seconds", self.delay_seconds)
        check_seconds("webhooks.timestamp_offset", abs(self.timestamp_offset))
        if self.shape not in ("nested", "flat"):
            raise UsageError(f"webhooks.shape: unknown shape {self.shape!r}", hint="use nested or flat")
        if self.secret is not None:
            check_secret(self.secret)

    @property
    def signing_key(self) -> bytes | None:
        """The HMAC key the secret stands for (its base64 part decoded); None when not signing."""
        return None if self.secret is None else check_secret(self.secret)


@dataclass(frozen=True, slots=True)
class Answers:
    """Which of the shapes seen in the wild the service's answers take (seeded per task).

    files_at_data     probability that a finished task lists its files at ``data.files``
                      (the API reference) rather than ``data.output.files`` (the examples)
    thumbnail         probability that the file list names an image thumbnail (``file_type``
                      ``image``) before the video (*assumption*: the contract says only to
                      pick the entry whose ``file_type`` is ``video``, so other entries exist)
    completed         probability that a finished task's status says ``completed`` (what
                      APIDot's own web UI reads as finished)
    processing        probability that a running task's status says ``processing`` (the
                      web UI's other in-progress word; off by default: never seen in answers)
    refund            share of a failed task's credits given back (the dashboard shows
                      ``credits_return``, "possibly partial"); 1 refunds in full
    refund_shown      probability that a failed task's status carries ``credits_return``
                      (*assumption*: the status endpoint is not documented to carry it)
    progress          whether a ``running`` task's status carries ``progress`` (0-100)
    """

    files_at_data: float = 0.5
    thumbnail: float = 0.25
    completed: float = 0.05
    processing: float = 0.0
    refund: float = 1.0
    refund_shown: float = 1.0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("files_at_data", "thumbnail", "completed", "processing", "refund", "refund_shown"):
            check_rate(f"answers.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything the simulator can be told; the defaults behave like a healthy service.

    key_prefix           any Bearer key starting with this is accepted...
    api_key              ...unless an exact key is set, then only that one is
    time_scale           real seconds per service second (0.001: a 60 s render -> 0.06 s)
    url_ttl              service seconds a result file URL stays valid (403 after): 3 days,
                         as long as APIDot keeps generated media
    credits              starting balance in credits; None means unlimited
    submits_per_minute   the submit limit, as a rate: ``submits_per_minute x rate_window / 60``
                         submits per window (rounded, at least 1) per API key (None: no limit)
    status_per_minute    the same for status calls, counted in their own window
    rate_window          service seconds of one rate window (the contract: 10 s by default)
    rate_limit_mode      how a window counts (see simulator/limits.py): ``fixed`` (windows
                         on the clock, 429 until the window ends), ``lockout`` (a full window
                         of 429s once the limit trips), ``sliding`` (at most N in any window)
    retry_after          send ``Retry-After`` with a 429 (the contract does not promise it)
    prices               a model/price file to use instead of the bundled one
    """

    key_prefix: str = "sk-sim"
    api_key: str | None = None
    time_scale: float = 1.0
    latency: Latency = field(default_factory=Latency)
    url_ttl: float = 3 * 86400.0
    credits: int | None = None
    submits_per_minute: float | None = None
    status_per_minute: float | None = None
    rate_window: float = 10.0
    rate_limit_mode: str = "fixed"
    retry_after: bool = False
    faults: Faults = field(default_factory=Faults)
    webhooks: WebhookFaults = field(default_factory=WebhookFaults)
    answers: Answers = field(default_factory=Answers)
    prices: Path | str | None = None

    def __post_init__(self) -> None:
        if not self.time_scale > 0:
            raise UsageError(f"time_scale must be above 0, got {self.time_scale!r}")
        if not MIN_TIME_SCALE <= self.time_scale <= MAX_TIME_SCALE:
            raise UsageError(f"time_scale must be from {MIN_TIME_SCALE:g} to {MAX_TIME_SCALE:g} real seconds per "
                             f"service second, got {self.time_scale!r}")
        if not self.url_ttl > 0:
            raise UsageError(f"url_ttl must be above 0 seconds, got {self.url_ttl!r}")
        check_seconds("url_ttl", self.url_ttl)
        if self.credits is not None and not 0 <= self.credits <= MAX_CREDITS:
            raise UsageError(f"credits must be from 0 to {MAX_CREDITS}, got {self.credits!r}")
        for name in ("submits_per_minute", "status_per_minute"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be 1 or more, got {value!r}", hint="leave it unset for no limit")
            if value is not None and value > MAX_PER_MINUTE:
                raise UsageError(f"{name} must be at most {MAX_PER_MINUTE}, got {value!r}",
                                 hint="leave it unset for no limit")
        if not self.rate_window > 0:
            raise UsageError(f"rate_window must be above 0 seconds, got {self.rate_window!r}")
        check_seconds("rate_window", self.rate_window)
        if self.rate_limit_mode not in LIMIT_MODES:
            raise UsageError(f"rate_limit_mode: unknown mode {self.rate_limit_mode!r}", hint=f"use {', '.join(LIMIT_MODES)}")

    def per_window(self, endpoint: str) -> int | None:
        """The limit of one rate window for ``submit`` or ``status`` (None: no limit)."""
        rate = self.submits_per_minute if endpoint == "submit" else self.status_per_minute
        return None if rate is None else max(1, round(rate * self.rate_window / 60.0))

    def summary(self) -> dict[str, object]:
        """The knobs as plain JSON-able data (shown in /_sim/stats); the exact key is masked."""
        out: dict[str, object] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "api_key":
                value = None if value is None else "***"
            elif item.name in ("latency", "faults", "webhooks", "answers"):
                value = {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
                if item.name == "webhooks" and value["secret"] is not None:
                    value["secret"] = "***"
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
