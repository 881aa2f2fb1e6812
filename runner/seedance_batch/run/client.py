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

The API key is sent only in the ``Authorization`` header of API calls (never to
a file URL, which may live on another host).

Nothing the service sends is trusted (a broken or hostile server, or one that
answers in its name):

* every text it sends (error bodies, a task's ``error_message``, status words) goes
  through :func:`~seedance_batch.safetext.service_text` with the key *here*, before it
  leaves the client: scrubbed, then bounded, so neither the ledger, the progress
  lines nor a report written later without the key can carry it;
* an answer body is read streaming, at most :data:`MAX_ANSWER_BYTES` (decoded), and
  one exchange has a deadline; past either, or nested too deep to parse, the answer
  is *malformed*: 5xx retried, an unreadable 2xx submit ``unknown``, never a traceback;
* a task id is accepted at submit only when it is a bounded, printable token without
  blanks (:func:`task_id_problem`; no format is demanded, ids come in several forms),
  else the job is ``unknown`` (the task may exist); it is always sent percent-encoded
  as one path segment, so it cannot reach another path on the API host;
* a file URL is kept only when it is a bounded http(s) URL that does not carry the key.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpx

from ..errors import (
    AmbiguousSubmit,
    ApiError,
    AuthenticationError,
    InsufficientCredits,
    InvalidRequest,
    RateLimited,
    TransientError,
    UsageError,
)
from ..safetext import one_line, scrub, service_text
from .downloads import BodyError, read_bounded

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "MAX_ANSWER_BYTES",
    "MAX_TASK_ID",
    "ApiClient",
    "SubmitAnswer",
    "TaskStatus",
    "check_credentials",
    "error_for_exception",
    "error_for_response",
    "parse_retry_after",
    "parse_status",
    "task_id_problem",
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
# An answer is a few hundred bytes (a status with its file list); 1 MiB is far past any
# real one, and all a hostile server can make the client hold.
MAX_ANSWER_BYTES = 1 << 20
# Task ids seen are ~16-40 characters (task-unified-1757165031-uyujaw3d, FDR7H8Y7JAL97KCV);
# 256 leaves room for any other form and keeps a URL, a ledger row, a log line small.
MAX_TASK_ID = 256
# A status word is one word ("not_started", "processing"); longer is noise.
MAX_STATUS_WORD = 64
# Signed file URLs carry long query strings (~1-2 KB for S3-style signatures).
MAX_FILE_URL = 8192
# How much of an unusable task id an error message shows (enough to find it in a dashboard).
TASK_ID_PREVIEW = 80


@dataclass(frozen=True, slots=True)
class SubmitAnswer:
    """What a successful submit returned (the task id is usable: see :func:`task_id_problem`)."""

    task_id: str
    status: str | None


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """A task as the status endpoint describes it. Unknown statuses mean "still running".

    Every text in it was scrubbed and bounded by the client.
    """

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


@dataclass(frozen=True, slots=True)
class _Answer:
    """One HTTP exchange as read: ``content`` is None when the body was unreadable (too large...)."""

    status: int
    headers: httpx.Headers
    content: bytes | None


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
        self._deadline = _exchange_deadline(timeout)
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

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a text the service sends back (the API key)."""
        return (self._key,)

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._files.aclose()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def scrub(self, text: str) -> str:
        """``text`` with the API key and credential-shaped tokens masked (servers may echo what they were sent)."""
        return scrub(text, self.secrets)

    async def submit(self, body: Mapping[str, Any]) -> SubmitAnswer:
        """POST one submit; one attempt. Raises an :class:`ApiError` subclass on anything but success."""
        answer = await self._exchange("submit", "POST", self.base_url + SUBMIT_PATH, dict(body))
        payload = self._checked("submit", answer)
        data = _data(payload)
        task_id = data.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise AmbiguousSubmit("submit: the service said OK but sent no task id", status=answer.status)
        problem = task_id_problem(task_id, self.secrets)
        if problem is not None:
            preview = one_line(service_text(task_id, self.secrets, TASK_ID_PREVIEW))
            raise AmbiguousSubmit(
                f"submit: the service said OK with an unusable task id ({problem}): {preview}; the task may exist",
                status=answer.status, hint="not tracked; check the APIDot dashboard, or --resubmit-unknown")
        return SubmitAnswer(task_id, _status_word(data.get("status"), self.secrets))

    async def status(self, task_id: str) -> TaskStatus:
        """GET one task's status; one attempt. Raises an :class:`ApiError` subclass on failure.

        ``task_id`` goes into the URL percent-encoded as one path segment; one that is not
        a usable id (an older version may have stored one) is refused without a request.
        """
        problem = task_id_problem(task_id, self.secrets)
        if problem is not None:
            raise InvalidRequest(f"status: not asked: {problem}")
        url = self.base_url + STATUS_PATH.format(task_id=quote(task_id, safe=""))
        payload = self._checked("status", await self._exchange("status", "GET", url))
        return parse_status(task_id, _data(payload), self.secrets)

    async def _exchange(self, op: str, method: str, url: str, body: Any = None) -> _Answer:
        """One request and its (bounded) answer, within the exchange deadline."""
        try:
            with anyio.fail_after(self._deadline):
                async with self._http.stream(method, url, json=body, headers=self._headers()) as response:
                    try:
                        content: bytes | None = await read_bounded(response, MAX_ANSWER_BYTES)
                    except BodyError:
                        content = None  # too large or undecodable: a malformed answer
                    return _Answer(response.status_code, response.headers, content)
        except httpx.HTTPError as exc:
            raise error_for_exception(op, exc, self._where) from None
        except TimeoutError:
            raise _overdue(op, self._deadline) from None

    def _headers(self) -> dict[str, str]:
        # Only the encodings read_bounded can undo (httpx would also offer br/zstd when installed).
        return {"Authorization": f"Bearer {self._key}", "Accept-Encoding": "gzip, deflate"}

    def _checked(self, op: str, answer: _Answer) -> Mapping[str, Any]:
        error, payload = _classify(op, answer.status, answer.headers, answer.content, self.secrets)
        if error is not None:
            raise error
        assert payload is not None
        return payload


def _exchange_deadline(timeout: httpx.Timeout) -> float | None:
    """The longest one exchange may take: every phase at its own limit, one after another.

    httpx's timeouts are per phase and per read, so a server dripping its answer a
    byte at a time never trips them; this bound does. None when a phase is unbounded.
    """
    parts = (timeout.pool, timeout.connect, timeout.write, timeout.read)
    return None if any(p is None for p in parts) else float(sum(parts))  # type: ignore[arg-type]


def _overdue(op: str, deadline: float | None) -> ApiError:
    if op == "submit":
        return AmbiguousSubmit(f"submit: sent, but no whole answer within {deadline:g} s; the task may exist",
                               hint="not resubmitted automatically; use --resubmit-unknown to submit it again")
    return TransientError(f"{op}: no whole answer within {deadline:g} s")


def _data(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    data = payload.get("data")
    return data if isinstance(data, Mapping) else payload


def task_id_problem(task_id: object, secrets: Iterable[str | None] = ()) -> str | None:
    """Why ``task_id`` cannot be used as a task id, or None when it can.

    No format is demanded (ids come in several forms): a usable id is a printable token
    of at most :data:`MAX_TASK_ID` characters, without blanks, control or invisible
    characters, not only dots (a path segment ``..`` would leave the status path),
    and without a secret in it (it is stored and shown).
    """
    if not isinstance(task_id, str) or not task_id:
        return "no task id"
    if len(task_id) > MAX_TASK_ID:
        return f"{len(task_id)} characters, at most {MAX_TASK_ID}"
    if not task_id.isprintable() or any(c.isspace() for c in task_id):
        return "control, invisible or blank characters"
    if not task_id.strip("."):
        return "only dots"
    if any(secret and secret in task_id for secret in secrets):
        return "it carries the API key"
    return None


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


def parse_status(task_id: str, data: Mapping[str, Any], secrets: Iterable[str | None] = ()) -> TaskStatus:
    """A status answer's ``data`` as a :class:`TaskStatus` (tolerant of missing parts).

    ``task_id`` is the one asked about (an id in the answer is not trusted to replace
    it); every text is scrubbed of ``secrets`` and bounded.
    """
    message = data.get("error_message")
    return TaskStatus(
        task_id=task_id,
        status=_status_word(data.get("status"), secrets) or "unknown",
        file_urls=_file_urls(data, secrets),
        error_message=_text(message, secrets) if message else None,
    )


def _status_word(value: object, secrets: Iterable[str | None]) -> str | None:
    return service_text(value, secrets, MAX_STATUS_WORD) if isinstance(value, str) and value else None


def _file_urls(data: Mapping[str, Any], secrets: Iterable[str | None]) -> tuple[str, ...]:
    """The video URLs of a status answer (``data.output.files`` or ``data.files``).

    Entries whose ``file_type`` is ``video`` first, else the untyped ones; a URL is kept
    only when it is a bounded, printable http(s) URL without the key in it (a URL is used
    as sent, so it cannot be scrubbed: it is dropped instead).
    """
    output = data.get("output")
    files = output.get("files") if isinstance(output, Mapping) else None
    if files is None:
        files = data.get("files")
    if not isinstance(files, list):
        return ()
    entries = [f for f in files if isinstance(f, Mapping)]
    chosen = [f for f in entries if f.get("file_type") == "video"] or [f for f in entries if "file_type" not in f]
    return tuple(f["file_url"] for f in chosen if _usable_url(f.get("file_url"), secrets))


def _usable_url(url: object, secrets: Iterable[str | None]) -> bool:
    if not isinstance(url, str) or len(url) > MAX_FILE_URL or not url.isprintable() or " " in url:
        return False
    if any(secret and secret in url for secret in secrets):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def error_for_response(op: str, status: int, headers: Mapping[str, str], content: bytes | None,
                       secrets: Iterable[str | None] = ()) -> ApiError | None:
    """The error an HTTP answer means, or None when it is a usable success.

    ``content`` None: a body that could not be read (too large, undecodable). Any text
    the body carries is scrubbed of ``secrets`` and bounded before it enters the error.
    """
    return _classify(op, status, headers, content, secrets)[0]


def _classify(op: str, status: int, headers: Mapping[str, str], content: bytes | None,
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
        detail = _message(payload, secrets) or f"code {_describe(code, secrets)} inside HTTP {status}"
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
    """The JSON object ``content`` holds; None when it is not one (or is nested past the parser)."""
    try:
        value = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _message(payload: Mapping[str, Any], secrets: Iterable[str | None]) -> str | None:
    error = payload.get("error")
    if isinstance(error, Mapping):
        error = error.get("message") or error.get("type")
    text = error or payload.get("message") or payload.get("msg")
    return _text(text, secrets) if text else None


def _text(value: object, secrets: Iterable[str | None]) -> str:
    """A service text as it may be stored: scrubbed of ``secrets``, then bounded."""
    return service_text(value if isinstance(value, str) else _describe(value, secrets), secrets)


def _describe(value: object, secrets: Iterable[str | None]) -> str:
    """A short, safe rendering of a JSON value where text was expected.

    Containers are named, not printed: their repr may be nested past the recursion limit.
    """
    if isinstance(value, str):
        return repr(service_text(value, secrets, MAX_STATUS_WORD))
    if value is None or isinstance(value, (bool, int, float)):
        return service_text(repr(value), secrets, MAX_STATUS_WORD)
    return f"(a JSON {'object' if isinstance(value, Mapping) else 'array'}, not text)"
