"""The simulated service: its tasks, credits, limits, counters and rules, without HTTP.

:class:`SimService` decides what each call gets (a :class:`Reply`: HTTP status,
JSON body, headers, and a fault to act out), and keeps the counters that
``GET /_sim/stats`` shows. The HTTP layer (``app.py``) only translates. All of
it runs on the server's event loop thread, so no locks are needed.

Error bodies are the published shape, for every status (see :func:`.shapes.error_body`)::

    {"code": 400, "error": {"message": "input.duration: ...", "type": "invalid_request_error"}}

some (402, 429) with a top-level ``message`` too. A 400 lists every problem, each as
``field: message``, joined by ``"; "``.

Rate limits are counted per API key, submits and status calls each in their own
window (:mod:`.limits`); credits are charged at submit and a failed task's refund is
given back when it fails (:meth:`SimService.balance_now`).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..expand import request_key
from ..models import RuleViolation, check_request, load_catalog, price_request
from .assets import file_url
from .config import REQUEST_FAULTS, SimulatorConfig
from .limits import RateWindow, make_window
from .shapes import error_body, status_data
from .tasks import Task, draw, make_task

__all__ = ["RateWindow", "Reply", "SimService", "error_body"]

STATES = ("not_started", "running", "finished", "failed")
# Faults acted out instead of doing the work; the others happen after it.
BEFORE_WORK = frozenset({"server_error", "drop", "malformed", "error_code"})
SERVER_ERRORS = (500, 502, 503)


@dataclass(frozen=True, slots=True)
class Reply:
    """What one call gets. ``fault`` (if any) is acted out by the HTTP layer."""

    status: int
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    fault: str | None = None


def _error(status: int, kind: str | None, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, error_body(status, kind, message), dict(headers or {}))


class SimService:
    """The world behind the endpoints: tasks, credits, limits, counters."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.catalog = load_catalog(config.prices)
        self.secret = secrets.token_bytes(16)
        self.tasks: dict[str, Task] = {}
        self.spent = 0
        self.attempts: Counter[str] = Counter()  # submits per body key that passed auth and limits
        self.accepted: Counter[str] = Counter()  # tasks created per body key (what is billed)
        self.asked: Counter[str] = Counter()  # status calls per task id
        self.counts: Counter[str] = Counter()  # requests, errors by status, faults, files
        self.webhooks: Counter[str] = Counter()
        self.refunded = 0  # credits given back for failed tasks (counted when they fail)
        self._refunds: list[tuple[float, str]] = []  # (when, task id) of refunds still to come: a heap
        self._windows: dict[tuple[str, str], RateWindow] = {}  # (API key, scope) -> its window

    # -- the gate every API call passes -------------------------------------------------------

    def _gate(self, endpoint: str, authorization: str | None, now: float) -> Reply | None:
        if not self._key_ok(authorization):
            self.counts["401"] += 1
            return _error(401, "authentication_error", "missing or invalid API key; send Authorization: Bearer <key>")
        window = self._window(endpoint, authorization or "")
        wait = None if window is None else window.admit(now)
        if window is not None and wait is not None:
            self.counts[f"429.{endpoint}"] += 1
            # Retry-After is real seconds, whole, at least 1 (HTTP's form); only when told to send it.
            headers = {"Retry-After": str(max(1, int(wait + 0.999)))} if self.config.retry_after else {}
            scope = "submits" if endpoint == "submit" else "status calls"
            message = (f"rate limit reached: at most {window.limit} {scope} per {self.config.rate_window:g} s; "
                       "slow down and try again")
            return _error(429, None, message, headers)
        return None

    def _window(self, endpoint: str, authorization: str) -> RateWindow | None:
        """The rate window of this key in this scope (made at its first call); None: no limit."""
        limit = self.config.per_window(endpoint)
        if limit is None:
            return None
        found = self._windows.get((authorization, endpoint))
        if found is None:
            seconds = self.config.rate_window * self.config.time_scale  # a service window, in real seconds
            found = self._windows[(authorization, endpoint)] = make_window(self.config.rate_limit_mode, limit, seconds)
        return found

    def _key_ok(self, authorization: str | None) -> bool:
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return False
        if self.config.api_key is not None:
            return secrets.compare_digest(key, self.config.api_key)
        return key.startswith(self.config.key_prefix)

    def _fault(self, endpoint: str, subject: str, nth: int) -> str | None:
        faults = self.config.faults
        if not faults.any_request_fault or endpoint not in faults.on:
            return None
        roll = draw(faults.seed, endpoint, subject, nth)
        for name in REQUEST_FAULTS:
            rate = getattr(faults, name)
            if name == "ambiguous_submit" and endpoint != "submit":
                continue
            if roll < rate:
                self.counts[f"fault.{name}"] += 1
                return name
            roll -= rate
        return None

    def _before_work(self, fault: str, endpoint: str, subject: str, nth: int) -> Reply:
        """The reply for a fault acted out instead of the work (which 5xx is seeded too)."""
        if fault != "server_error":
            return Reply(200, fault=fault)
        pick = draw(self.config.faults.seed, "5xx", endpoint, subject, nth)
        return Reply(SERVER_ERRORS[int(pick * len(SERVER_ERRORS))], fault=fault)

    # -- submit -------------------------------------------------------------------------------

    def submit(self, authorization: str | None, raw: bytes) -> tuple[Reply, Task | None]:
        """Handle one ``POST /api/generate/submit``; the task, when one was created."""
        now = self.clock()
        self.counts["submit_requests"] += 1
        denied = self._gate("submit", authorization, now)
        if denied is not None:
            return denied, None
        body = _parse(raw)
        key = request_key(body) if isinstance(body, dict) else hashlib.sha256(raw).hexdigest()
        nth = self.attempts[key]
        self.attempts[key] += 1
        fault = self._fault("submit", key, nth)
        if fault in BEFORE_WORK:
            return self._before_work(fault, "submit", key, nth), None
        if isinstance(body, RuleViolation):
            return self._invalid([body]), None
        problems = [*check_request(body, self.catalog), *_callback_problems(body)]
        if problems:
            return self._invalid(problems), None
        return self._accept(body, key, now, fault)

    def _invalid(self, problems: list[RuleViolation]) -> Reply:
        """400, every problem as ``field: message``."""
        self.counts["400"] += 1
        return _error(400, None, "; ".join(f"{p.field}: {p.message}" for p in problems))

    def _accept(self, body: Mapping[str, Any], key: str, now: float, fault: str | None) -> tuple[Reply, Task | None]:
        cost = price_request(body, self.catalog).credits
        left = self.balance_now(now)
        if left is not None and cost > left:
            self.counts["402"] += 1
            return _error(402, None, f"this job costs {cost} credits; {left} credits left"), None
        task = make_task(self.config, body, key, self.accepted[key], now, cost, catalog=self.catalog)
        self.accepted[key] += 1
        self.spent += cost
        self.tasks[task.task_id] = task
        if task.refund:
            heapq.heappush(self._refunds, (task.ends_at, task.task_id))
        data = {"task_id": task.task_id, "status": "not_started", "created_time": task.created_time}
        return Reply(200, {"code": 200, "data": data}, fault=fault), task

    # -- status -------------------------------------------------------------------------------

    def status(self, authorization: str | None, task_id: str, base_url: str) -> Reply:
        """Handle one ``GET /api/generate/status/{task_id}``."""
        now = self.clock()
        self.counts["status_calls"] += 1
        denied = self._gate("status", authorization, now)
        if denied is not None:
            return denied
        nth = self.asked[task_id]
        self.asked[task_id] += 1
        fault = self._fault("status", task_id, nth)
        if fault in BEFORE_WORK:
            return self._before_work(fault, "status", task_id, nth)
        task = self.tasks.get(task_id)
        if task is None:
            self.counts["404"] += 1
            return _error(404, "not_found", f"no task {task_id!r}")
        data = status_data(task, now, self.config.answers, self.config.faults.seed, self._url_maker(task, base_url, now))
        return Reply(200, {"code": 200, "data": data}, fault=fault)

    def files(self, task: Task, base_url: str, now: float) -> list[dict[str, str]]:
        """The task's video as a webhook event lists it, its URL valid for ``url_ttl`` service seconds."""
        return [{"file_url": self._url_maker(task, base_url, now)("video.mp4"), "file_type": "video"}]

    def _url_maker(self, task: Task, base_url: str, now: float) -> Callable[[str], str]:
        expires = int(now + self.config.url_ttl * self.config.time_scale + 0.999)
        return lambda name: file_url(base_url, self.secret, task.task_id, expires, name)

    # -- credits ------------------------------------------------------------------------------

    def balance_now(self, now: float) -> int | None:
        """Credits left at ``now`` (None: unlimited), failed tasks' refunds given back as they fail."""
        while self._refunds and self._refunds[0][0] <= now:
            _, task_id = heapq.heappop(self._refunds)
            self.refunded += self.tasks[task_id].refund
        balance = self.config.credits
        return None if balance is None else balance - self.spent + self.refunded

    # -- introspection ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Everything ``GET /_sim/stats`` shows (see the package docstring for the fields)."""
        now = self.clock()
        left = self.balance_now(now)
        by_state = Counter({name: 0 for name in STATES})
        by_state.update(task.status_at(now) for task in self.tasks.values())
        balance = self.config.credits
        counts = self.counts
        return {
            "submits": {
                "requests": counts["submit_requests"],
                "accepted": sum(self.accepted.values()),
                "by_body": dict(self.accepted),
                "attempts_by_body": dict(self.attempts),
            },
            "status_calls": counts["status_calls"],
            "rate_limited": {"submit": counts["429.submit"], "status": counts["429.status"]},
            "errors": {code: counts[code] for code in ("400", "401", "402", "403", "404", "500")},
            "faults": {name: counts[f"fault.{name}"] for name in REQUEST_FAULTS},
            "webhooks": {name: self.webhooks[name] for name in WEBHOOK_COUNTS},
            "tasks": {"total": len(self.tasks), "by_state": dict(by_state)},
            "credits": {"balance": balance, "spent": self.spent, "refunded": self.refunded, "left": left},
            "files_served": counts["files_served"],
            "thumbnails_served": counts["thumbnails_served"],
            "config": self.config.summary(),
        }


    def task_times(self) -> dict[str, Any]:
        """Every task's life as the simulator decided it (``GET /_sim/tasks``), for measuring lag.

        Times are the simulator's clock (epoch seconds, real time): ``created``, ``starts_at``
        (leaves ``not_started``), ``ends_at`` (finished or failed; for a ``stuck`` task, when
        it would have ended). ``status`` is its state now.
        """
        now = self.clock()
        return {
            "clock": now,
            "time_scale": self.config.time_scale,
            "tasks": {task.task_id: {"created": task.created, "starts_at": task.starts_at, "ends_at": task.ends_at,
                                     "fate": task.fate, "status": task.status_at(now)}
                      for task in self.tasks.values()},
        }


WEBHOOK_COUNTS = ("scheduled", "sent", "delivered", "failed", "duplicates", "delayed", "stale", "dropped", "signed")


def _parse(raw: bytes) -> dict[str, Any] | RuleViolation:
    """The request body's JSON object, or what is wrong with it."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return RuleViolation("body", "the request body is not valid JSON")
    if not isinstance(body, dict):
        return RuleViolation("body", "the request body must be a JSON object")
    return body


def _callback_problems(body: Mapping[str, Any]) -> list[RuleViolation]:
    url = body.get("callback_url")
    if url is None or (isinstance(url, str) and url.startswith(("http://", "https://"))):
        return []
    return [RuleViolation("callback_url", "callback_url must be an absolute http(s) URL")]
