"""Which error each outcome of an API call means: the contract's error table, as code.

Pure functions of what came back (or of the transport failure); the client
(:mod:`.client`) calls them after each exchange. A test proves the table complete.

==========================================  ==================  ===========================
outcome                                     submit              status
==========================================  ==================  ===========================
2xx, JSON, ``code`` absent/0/200, task id   success             success
2xx, JSON, ``code`` 400/401/402/429 inside  as that HTTP status as that HTTP status
2xx, JSON, any other ``code`` inside        TransientError      TransientError
2xx, body unreadable, no usable task id     AmbiguousSubmit     TransientError
400 and other 4xx                           InvalidRequest      InvalidRequest
401, 403                                    AuthenticationError AuthenticationError
402                                         InsufficientCredits InsufficientCredits
408, 425, 5xx, 1xx/3xx                      TransientError      TransientError
429                                         RateLimited         RateLimited
nothing sent (connect, pool, bad protocol)  TransientError      TransientError
sent, no answer (timeout, reset, deadline)  AmbiguousSubmit     TransientError
==========================================  ==================  ===========================

A 2xx submit answer we cannot read is treated as ambiguous, not transient
(a departure from a plain "malformed -> retry" rule, on purpose): the service
said yes and may have created, and billed, a task whose id we lost; retrying
could pay twice. The simulator's ``malformed`` fault does nothing server-side,
so there the job ends ``unknown`` and ``--resubmit-unknown`` is safe.

Any text an answer carries is scrubbed of the key and bounded before it enters an error.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from ..errors import (
    AmbiguousSubmit,
    ApiError,
    AuthenticationError,
    InsufficientCredits,
    InvalidRequest,
    RateLimited,
    TransientError,
)
from .answers import describe, text_of

__all__ = ["classify", "error_for_exception", "error_for_response", "overdue", "parse_retry_after"]

_OK_CODES = (None, 0, 200)
_NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol,
                 httpx.ProxyError, httpx.LocalProtocolError, httpx.InvalidURL, httpx.TooManyRedirects)
_RESUBMIT_HINT = "not resubmitted automatically; use --resubmit-unknown to submit it again"


def error_for_response(op: str, status: int, headers: Mapping[str, str], content: bytes | None,
                       secrets: Iterable[str | None] = ()) -> ApiError | None:
    """The error an HTTP answer means, or None when it is a usable success.

    ``content`` None: a body that could not be read (too large, undecodable).
    """
    return classify(op, status, headers, content, secrets)[0]


def classify(op: str, status: int, headers: Mapping[str, str], content: bytes | None,
             secrets: Iterable[str | None]) -> tuple[ApiError | None, dict[str, Any] | None]:
    """(the error the answer means or None, its JSON object when it has one)."""
    payload = _json_object(content) if content is not None else None
    if 200 <= status < 300:
        if payload is None:
            what = "that cannot be read" if content is None else "that is not a readable JSON object"
            if op == "submit":
                return AmbiguousSubmit(f"submit: the service answered OK with a body {what}", status=status), None
            return TransientError(f"{op}: HTTP {status} with a body {what}", status=status), None
        code = payload.get("code")
        if code in _OK_CODES:
            return None, payload
        inner = code if isinstance(code, int) and code in (400, 401, 402, 403, 429) else 500
        detail = _message(payload, secrets) or f"code {describe(code, secrets)} inside HTTP {status}"
        return _by_status(op, inner, headers, detail), payload
    return _by_status(op, status, headers, _message(payload, secrets) if payload else None), payload


def _by_status(op: str, status: int, headers: Mapping[str, str], detail: str | None) -> ApiError:
    text = f"{op}: HTTP {status}" + (f": {detail}" if detail else "")
    if status == 429:
        return RateLimited(text, retry_after=parse_retry_after(headers.get("retry-after")))
    if status in (401, 403):
        return AuthenticationError(text, status=status, hint="check APIDOT_API_KEY (environment or .env)")
    if status == 402:
        return InsufficientCredits(text, status=status, hint="top up the APIDot account, then run again")
    if status in (408, 425) or status >= 500 or status < 200 or 300 <= status < 400:
        return TransientError(text, status=status)
    return InvalidRequest(text, status=status)


def error_for_exception(op: str, exc: httpx.HTTPError, where: str = "the service") -> ApiError:
    """The error a transport failure means: was the request possibly received?

    ``where``: the service as the user named it (APIDOT_BASE_URL), for "could not reach".
    """
    name = type(exc).__name__
    if isinstance(exc, _NOTHING_SENT):
        return TransientError(f"{op}: could not reach {where} ({name})")
    if op == "submit":
        return AmbiguousSubmit(f"submit: sent, but no answer came ({name}); the task may exist", hint=_RESUBMIT_HINT)
    return TransientError(f"{op}: no answer ({name})")


def overdue(op: str, deadline: float | None) -> ApiError:
    """The error an exchange past its whole deadline means (a server dripping its answer)."""
    if op == "submit":
        return AmbiguousSubmit(f"submit: sent, but no whole answer within {deadline:g} s; the task may exist",
                               hint=_RESUBMIT_HINT)
    return TransientError(f"{op}: no whole answer within {deadline:g} s")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date); None when absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json_object(content: bytes) -> dict[str, Any] | None:
    """The JSON object ``content`` holds; None when it is not one (or is nested past the parser)."""
    try:
        value = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _message(payload: Mapping[str, Any], secrets: Iterable[str | None]) -> str | None:
    """The error's words: the published ``error.message``, else a top-level ``message`` (some
    bodies carry one), else the error's ``type``; a plain ``error`` text is taken as it is."""
    error: Any = payload.get("error")
    kind = None
    if isinstance(error, Mapping):
        error, kind = error.get("message"), error.get("type")
    text = error or payload.get("message") or payload.get("msg") or kind
    return text_of(text, secrets) if text else None
