"""A local APIDot simulator: a real HTTP server speaking the Seedance 2 contract.

It is what every end-to-end test, demo and benchmark talks to, and what
``seedance-batch simulate`` and ``run --simulate`` start. Rooms:

    config.py    every knob (:class:`SimulatorConfig`, :class:`Faults`, ...)
    tasks.py     a task's fate and timing, read off the clock
    service.py   the rules: auth, rate limits, validation, credits, faults, stats (SimService)
    app.py       the Starlette app; acting out faults (hang, drop, garble)
    webhooks.py  background callback delivery (duplicates, delays, stale events)
    assets.py    the bundled MP4 and its signed, expiring URLs
    server.py    uvicorn in a thread (:func:`run_simulator`), or in the foreground

Contract (``/work/shared/apidot-contract.md``) as implemented, with the
simulator's own choices marked *assumption*:

- Bearer auth: any key starting ``sk-sim`` (or exactly ``api_key``); else 401
  ``authentication_error``.
- Bodies are checked with ``seedance_batch.models.check_request`` (the planner's
  rules, from schemas/models.json or ``prices``). Beyond the contract's table
  (*assumption*, stricter than the service may be): an unknown ``input`` field,
  a media URL that is not absolute http(s), and a ``callback_url`` that is not
  one are each a 400; unknown top-level fields pass. ``Content-Type`` is not
  checked. Error body (*assumption*, every status)::

      {"code": 400, "error": {"type": "invalid_request",
                              "message": "input.duration: duration 3 is out of range; ..."}}

- Credits are charged at submit (``models.price_request``) and not refunded for
  failed tasks (*assumption*); past the balance: 402 ``insufficient_credits``.
- Rate limits: at most N submits in any 60 service seconds; else 429
  ``rate_limited``, always with ``Retry-After`` (whole real seconds until a slot
  frees; the contract says only "if sent"). A limit on status calls is an
  *assumption* (the contract names only the submission rate), off by default.
  ``time_scale`` compresses every service duration (see config.py).
- Task life: ``not_started`` -> ``running`` -> ``finished`` | ``failed``; the
  ``running`` name is an *assumption* (the contract: "running or similar may
  appear"). Status of an unknown task: 404 ``not_found`` (*assumption*).
  ``output`` is ``null`` until the task is finished, and status echoes
  ``created_time`` (*assumptions*).
- File URLs expire after ``url_ttl`` service seconds (403 ``url_expired``, *assumption*);
  status hands out a fresh one each time (the contract's assumption).
- Webhooks: each terminal state is POSTed once to ``callback_url`` as
  ``{"data": {"task_id", "status", "files"}}`` (or flat), never retried (*assumption*).

``GET /_sim/stats`` (and ``RunningSimulator.stats()``)::

    submits        requests; accepted (tasks created); by_body: job key -> tasks
                   created (key = seedance_batch.expand.build.request_key of the body,
                   so "no body submitted twice" is max(by_body.values()) == 1);
                   attempts_by_body: job key -> submits that passed auth and limits
    status_calls   every status request
    rate_limited   429s sent: {"submit": n, "status": n}
    errors         answers by status: "400", "401", "402", "403", "404", "500"
    faults         request faults acted out, by name
    webhooks       scheduled, sent, delivered, failed, duplicates, delayed, stale
    tasks          total and by_state (not_started, running, finished, failed)
    credits        balance (None: unlimited), spent, left
    files_served   MP4 downloads answered
    config         the knobs in force (an exact api_key is masked)
"""

from __future__ import annotations

from .app import create_app
from .config import Faults, Latency, SimulatorConfig, WebhookFaults
from .server import RunningSimulator, run_simulator, serve_in_thread, serve_until_signal

__all__ = [
    "Faults",
    "Latency",
    "RunningSimulator",
    "SimulatorConfig",
    "WebhookFaults",
    "create_app",
    "run_simulator",
    "serve_in_thread",
    "serve_until_signal",
]
