"""The APIDot client: one shared ``httpx.AsyncClient``, every outcome mapped to an error type.

Policy lives here and in the engine, I/O in httpx's transport (the seam tests
use). Each call is *one* attempt; the engine decides about retries, because a
submit must move its ledger row between attempts.

How outcomes map (the contract's error table; a test proves it complete):

==========================================  ==================  ===========================
outcome                                     submit              status
==========================================  ==================  ===========================
2xx, JSON, ``code`` absent/0/200, task id   success             success
2xx, JSON, ``code`` 400/401/402/429 inside  as that HTTP status as that HTTP status
2xx, JSON, any other ``code`` inside        TransientError      TransientError
2xx, body not JSON or no task id            AmbiguousSubmit     TransientError
400 and other 4xx                           InvalidRequest      InvalidRequest
401, 403                                    AuthenticationError AuthenticationError
402                                         InsufficientCredits InsufficientCredits
408, 425, 5xx, 1xx/3xx                      TransientError      TransientError
429                                         RateLimited         RateLimited
nothing sent (connect, pool, bad protocol)  TransientError      TransientError
sent, no answer (timeout, reset, decoding)  AmbiguousSubmit     TransientError
==========================================  ==================  ===========================

A 2xx submit answer we cannot read is treated as ambiguous, not transient
(a departure from a plain "malformed -> retry" rule, on purpose): the service
said yes and may have created, and billed, a task whose id we lost; retrying
could pay twice. The simulator's ``malformed`` fault does nothing server-side,
so there the job ends ``unknown`` and ``--resubmit-unknown`` is safe.

The API key is sent only in the ``Authorization`` header of API calls (never to
a file URL, which may live on another host) and is scrubbed from any text a
server sends back before it reaches an error message.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from .errors import (
    AmbiguousSubmit,
    ApiError,
    AuthenticationError,
    InsufficientCredits,
    InvalidRequest,
    RateLimited,
    TransientError,
    UsageError,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "ApiClient",
    "SubmitAnswer",
    "TaskStatus",
    "check_credentials",
    "error_for_exception",
    "error_for_response",
    "parse_retry_after",
]

DEFAULT_BASE_URL = "https://api.apidot.ai"
SUBMIT_PATH = "/api/generate/submit"
STATUS_PATH = "/api/generate/status/{task_id}"
# connect: nothing sent yet, safe to retry; read: long enough for a slow but healthy answer.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=10.0, pool=60.0)
# Idle connections are dropped well before common server keep-alive limits (uvicorn: 5 s),
# so a submit is never sent on a connection the server is closing (that race would look
# exactly like an ambiguous submit).
LIMITS = httpx.Limits(max_connections=16, max_keepalive_connections=16, keepalive_expiry=2.0)
FILE_LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=2.0)
TERMINAL = frozenset({"finished", "failed"})
_OK_CODES = (None, 0, 200)


@dataclass(frozen=True, slots=True)
class SubmitAnswer:
    """What a successful submit returned."""

    task_id: str
    status: str | None


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """A task as the status endpoint describes it. Unknown statuses mean "still running"."""

    task_id: str
    status: str
    file_urls: tuple[str, ...] = ()
    error_message: str | None = None

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class ApiClient:
    """Speaks the Seedance 2 contract over one shared ``httpx.AsyncClient``."""

    def __init__(self, base_url: str, api_key: str, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        check_credentials(base_url, api_key)
        self.base_url = base_url.rstrip("/")
        url = httpx.URL(base_url)
        # where "could not reach" points, without any user:password the URL may carry
        self._where = f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")
        self._key = api_key
        self._http = httpx.AsyncClient(timeout=timeout, limits=LIMITS, transport=transport,
                                       follow_redirects=False, trust_env=False)
        # Downloads get their own small pool (file URLs may be on another host, and big
        # bodies should not hold up status calls); it never carries the API key.
        self._files = httpx.AsyncClient(timeout=timeout, limits=FILE_LIMITS, transport=transport,
                                        follow_redirects=True, trust_env=False)

    @property
    def files(self) -> httpx.AsyncClient:
        """The client for result files: no Authorization header, ever."""
        return self._files

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._files.aclose()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def scrub(self, text: str) -> str:
        """``text`` with the API key masked (servers may echo what they were sent)."""
        return text.replace(self._key, "***") if self._key else text

    async def submit(self, body: Mapping[str, Any]) -> SubmitAnswer:
        """POST one submit; one attempt. Raises an :class:`ApiError` subclass on anything but success."""
        try:
            response = await self._http.post(self.base_url + SUBMIT_PATH, json=dict(body), headers=self._auth())
        except httpx.HTTPError as exc:
            raise error_for_exception("submit", exc, self._where) from None
        payload = self._checked("submit", response)
        data = payload.get("data") if isinstance(payload.get("data"), Mapping) else payload
        task_id = data.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise AmbiguousSubmit("submit: the service said OK but sent no task id", status=response.status_code)
        status = data.get("status")
        return SubmitAnswer(task_id, status if isinstance(status, str) else None)

    async def status(self, task_id: str) -> TaskStatus:
        """GET one task's status; one attempt. Raises an :class:`ApiError` subclass on failure."""
        try:
            response = await self._http.get(self.base_url + STATUS_PATH.format(task_id=task_id), headers=self._auth())
        except httpx.HTTPError as exc:
            raise error_for_exception("status", exc, self._where) from None
        payload = self._checked("status", response)
        data = payload.get("data") if isinstance(payload.get("data"), Mapping) else payload
        return parse_status(task_id, data)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    def _checked(self, op: str, response: httpx.Response) -> Mapping[str, Any]:
        error = error_for_response(op, response.status_code, response.headers, response.content)
        if error is not None:
            error.message = self.scrub(error.message)
            error.args = (error.message,)
            raise error
        return json.loads(response.content)


def check_credentials(base_url: str, api_key: str) -> None:
    """Refuse, with a :class:`UsageError`, a base URL or key no request could be sent with.

    Found before the run, not at the first submit, where a bad port or IPv6 address was a
    traceback and a key httpx cannot put in a header looked like a request that may have
    been sent (unknown, counted as spent). The key itself is never shown.
    """
    _check_base_url(base_url)
    if not api_key:
        raise UsageError("no API key", hint="set APIDOT_API_KEY in the environment or a .env file")
    if not (api_key.isascii() and api_key.isprintable()):
        raise UsageError("APIDOT_API_KEY has characters an HTTP header cannot carry (non-ASCII or control)",
                         hint="copy the key again from the APIDot dashboard")


def _check_base_url(base_url: str) -> None:
    try:
        parts = urlsplit(base_url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError when out of range or not a number
        httpx.URL(base_url)
    except (ValueError, httpx.InvalidURL):
        usable = False
    if not usable:
        raise UsageError(f"APIDOT_BASE_URL must be an http(s) URL, got {base_url!r}",
                         hint="e.g. https://api.apidot.ai or http://127.0.0.1:8750")


def parse_status(task_id: str, data: Mapping[str, Any]) -> TaskStatus:
    """A status answer's ``data`` as a :class:`TaskStatus` (tolerant of missing parts)."""
    status = data.get("status")
    output = data.get("output") if isinstance(data.get("output"), Mapping) else {}
    files = output.get("files") if isinstance(output, Mapping) else None
    if files is None:
        files = data.get("files")
    urls = tuple(
        f["file_url"] for f in files or () if isinstance(f, Mapping) and isinstance(f.get("file_url"), str)
    ) if isinstance(files, list) else ()
    message = data.get("error_message")
    return TaskStatus(
        task_id=str(data.get("task_id") or task_id),
        status=status if isinstance(status, str) and status else "unknown",
        file_urls=urls,
        error_message=str(message) if message else None,
    )


def error_for_response(op: str, status: int, headers: Mapping[str, str], content: bytes) -> ApiError | None:
    """The error an HTTP answer means, or None when it is a usable success."""
    payload = _json_object(content)
    if 200 <= status < 300:
        if payload is None:
            if op == "submit":
                return AmbiguousSubmit("submit: the service answered OK with a body that is not JSON", status=status)
            return TransientError(f"{op}: HTTP {status} with a body that is not JSON", status=status)
        code = payload.get("code")
        if code in _OK_CODES:
            return None
        inner = code if isinstance(code, int) and code in (400, 401, 402, 403, 429) else 500
        return _by_status(op, inner, headers, _message(payload) or f"code {code!r} inside HTTP {status}")
    return _by_status(op, status, headers, _message(payload) if payload else None)


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
    nothing_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                                    httpx.UnsupportedProtocol, httpx.ProxyError, httpx.LocalProtocolError,
                                    httpx.InvalidURL, httpx.TooManyRedirects))
    if nothing_sent:
        return TransientError(f"{op}: could not reach {where} ({name})")
    if op == "submit":
        return AmbiguousSubmit(
            f"submit: sent, but no answer came ({name}); the task may exist",
            hint="not resubmitted automatically; use --resubmit-unknown to submit it again",
        )
    return TransientError(f"{op}: no answer ({name})")


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
    try:
        value = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _message(payload: Mapping[str, Any]) -> str | None:
    error = payload.get("error")
    if isinstance(error, Mapping):
        error = error.get("message") or error.get("type")
    text = error or payload.get("message") or payload.get("msg")
    return str(text)[:300] if text else None
