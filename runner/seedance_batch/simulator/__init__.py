"""A local APIDot simulator: a real HTTP server speaking the Seedance 2 contract.

It is what every end-to-end test, demo and benchmark talks to, and what
``seedance-batch simulate`` and ``run --simulate`` start. Rooms:

    config.py    every knob (:class:`SimulatorConfig`, :class:`Faults`, :class:`Answers`, ...)
    tasks.py     a task's fate and timing, read off the clock
    service.py   the rules: auth, rate limits, validation, credits, faults, stats (SimService)
    app.py       the Starlette app; acting out faults (hang, drop, garble)
    limits.py    rate windows (fixed, lockout, sliding) per key and scope
    shapes.py    what a status answer and an error body look like
    webhooks.py  background callback delivery (duplicates, delays, stale events, drops)
    signing.py   Standard Webhooks signatures (the signing mode)
    assets.py    the bundled MP4, a thumbnail, and their signed, expiring URLs
    checks.py    knob validation; knobs.py: the command line's NAME=VALUE pairs
    server.py    uvicorn in a thread (:func:`run_simulator`), or in the foreground

Contract (``/work/shared/apidot-contract.md``) as implemented, the defaults being the
service as the contract describes it. *Published* marks what the contract states;
*assumption* what it leaves open, with the choice made:

- Bearer auth: any key starting ``sk-sim`` (or exactly ``api_key``); else 401
  ``authentication_error``.
- Bodies are checked with ``seedance_batch.models.check_request`` (the planner's
  rules, from schemas/models.json or ``prices``). Beyond the contract's table
  (*assumption*, stricter than the service may be): an unknown ``input`` field,
  a media URL that is not absolute http(s), and a ``callback_url`` that is not
  one are each a 400; unknown top-level fields pass. ``Content-Type`` is not checked.
  ``input.seed`` (a whole number in the model's seed range, models.json) is accepted: the
  contract's table does not list it, APIDot's own playground and client code send it;
  status answers echo it as ``data.seed`` (*assumption*: not published either way).
- Error bodies (*published*): ``{"code": 400, "error": {"message": ..., "type":
  "invalid_request_error"}}``; "some carry a top-level ``message``": here 402 and 429
  (*assumption*: which ones is not published). Types: ``invalid_request_error``,
  ``authentication_error``, ``insufficient_credits``, ``rate_limited`` (the contract's
  classes), ``not_found``, ``url_expired``, ``server_error`` (*assumptions*).
- Rate limits (*published*: "a fixed window per user (10 s by default), submits in
  their own scope; no numbers published, Retry-After not promised"): per API key,
  submits and status calls each in their own window of ``rate_window`` = 10 service
  seconds; ``rate_limit_mode`` reads "fixed window" as windows on the clock with 429
  until the window ends (``fixed``, the default) or as a full window of 429s once the
  limit trips (``lockout``); ``sliding`` is the 60 s sliding window of earlier
  versions. No ``Retry-After`` unless ``retry_after`` (then whole real seconds). The
  numbers (``submits_per_minute``, ``status_per_minute``) are unset (no limit) by
  default: none are published. A status limit at all is an *assumption* (the
  contract names the submission rate). ``time_scale`` compresses the windows.
- Credits are charged at submit (*published*) (``models.price_request``); past the
  balance: 402 ``insufficient_credits``. A failed task is refunded when it fails
  (*published*: the dashboard shows ``credits_return``, possibly partial; in full by
  default, ``Answers.refund``), and its status carries ``credits_return``
  (*assumption*: the status endpoint is not documented to carry it;
  ``Answers.refund_shown``).
- Task life (*published* words): ``not_started`` -> ``running`` -> ``finished`` |
  ``failed``. A running task's status carries ``progress`` 0-100 (*published*: "may
  carry"; here always, 0 queued, 100 ended). Some finished tasks say ``completed``
  (5%, ``Answers.completed``; *published*: the web UI reads it as finished), and
  ``processing`` can stand for running (off by default). 0.5% of tasks never finish
  (``Faults.task_stuck``; *published* that some stall, the share an *assumption*).
  Tasks wait in ``not_started`` for the model's fixed queue time, or with
  ``Latency(queue_median, queue_p95)`` a heavy-tailed lognormal wait (*published*:
  "minutes when the service is congested"; median 10 s, p95 180 s are the issue's figures).
  Status of an unknown task: 404 ``not_found`` (*assumption*).
- Files (*published*): at ``data.files`` for half the tasks, ``data.output.files`` for
  the rest (``Answers.files_at_data``), each entry with ``file_type``; a quarter list an
  ``image`` thumbnail before the ``video`` (*assumption*: the contract says only to pick
  the ``video`` entry). URLs expire after ``url_ttl`` = 3 service days (*published*:
  media is stored 3 days; 403 ``url_expired`` after); status hands out a fresh one each
  time (the contract's assumption).
- Webhooks: each terminal state is POSTed once to ``callback_url`` as
  ``{"data": {"task_id", "status", "files"}}`` (or flat), unsigned and never retried
  (*published*). ``WebhookFaults.drop`` loses callbacks (1: all); ``WebhookFaults.secret``
  signs them the Standard Webhooks way (:mod:`.signing`), for the day APIDot signs.

``GET /_sim/stats`` (and ``RunningSimulator.stats()``)::

    submits        requests; accepted (tasks created); by_body: job key -> tasks
                   created (key = seedance_batch.expand.build.request_key of the body,
                   so "no body submitted twice" is max(by_body.values()) == 1);
                   attempts_by_body: job key -> submits that passed auth and limits
    status_calls   every status request
    rate_limited   429s sent: {"submit": n, "status": n}
    errors         answers by status: "400", "401", "402", "403", "404", "500"
    faults         request faults acted out, by name
    webhooks       scheduled, sent, delivered, failed, duplicates, delayed, stale, dropped, signed
    tasks          total and by_state (not_started, running, finished, failed)
    credits        balance (None: unlimited), spent (charged at submit), refunded, left
    files_served   MP4 downloads answered (thumbnails_served: thumbnails)
    config         the knobs in force (an exact api_key is masked)
"""

from __future__ import annotations

from .app import create_app
from .config import Answers, Faults, Latency, SimulatorConfig, WebhookFaults
from .server import RunningSimulator, run_simulator, serve_in_thread, serve_until_signal

__all__ = [
    "Answers",
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
