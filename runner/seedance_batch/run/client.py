"""The APIDot client: one shared ``httpx.AsyncClient``, every outcome mapped to an error type.

Policy lives here and in the run, I/O in httpx's transport (the seam tests
use). Each call is *one* attempt; the run decides about retries, because a
submit must move its ledger row between attempts. Which error each outcome
means is the contract's table, in :mod:`.outcomes`; what an answer says about its
task is read by :mod:`.answers` (the webhook receiver reads its events there too).

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

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpx

from ..environment import KEY_ENV, URL_ENV
from ..errors import AmbiguousSubmit, InvalidRequest, UsageError
from ..safetext import one_line, scrub, service_text
from .answers import TaskStatus, read_task, task_data, task_status
from .bodies import BodyError, read_bounded
from .outcomes import classify, error_for_exception, overdue

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_ANSWER_BYTES",
    "MAX_TASK_ID",
    "ApiClient",
    "SubmitAnswer",
    "check_credentials",
    "task_id_problem",
]

SUBMIT_PATH = "/api/generate/submit"
STATUS_PATH = "/api/generate/status/{task_id}"
# connect: nothing sent yet, safe to retry; read: long enough for a slow but healthy answer.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=10.0, pool=60.0)
# Idle connections are dropped well before common server keep-alive limits (uvicorn: 5 s),
# so a submit is never sent on a connection the server is closing (that race would look
# exactly like an ambiguous submit).
LIMITS = httpx.Limits(max_connections=16, max_keepalive_connections=16, keepalive_expiry=2.0)
FILE_LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=2.0)
# An answer is a few hundred bytes (a status with its file list); 1 MiB is far past any
# real one, and all a hostile server can make the client hold.
MAX_ANSWER_BYTES = 1 << 20
# Task ids seen are ~16-40 characters (task-unified-1757165031-uyujaw3d, FDR7H8Y7JAL97KCV);
# 256 leaves room for any other form and keeps a URL, a ledger row, a log line small.
MAX_TASK_ID = 256
# How much of an unusable task id an error message shows (enough to find it in a dashboard).
TASK_ID_PREVIEW = 80

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SubmitAnswer:
    """What a successful submit returned (the task id is usable: see :func:`task_id_problem`)."""

    task_id: str
    status: str | None


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
        # One TLS context for both pools: loading the CA bundle is most of what a client costs to make.
        tls = httpx.create_ssl_context(trust_env=False) if transport is None else True
        self._http = httpx.AsyncClient(timeout=timeout, limits=LIMITS, transport=transport, verify=tls,
                                       follow_redirects=False, trust_env=False)
        # Downloads get their own small pool (file URLs may be on another host, and big
        # bodies should not hold up status calls); it never carries the API key.
        self._files = httpx.AsyncClient(timeout=timeout, limits=FILE_LIMITS, transport=transport, verify=tls,
                                        follow_redirects=True, trust_env=False)
        # Status words the service used for another word (``completed`` for finished), each logged once,
        # and told to ``on_alias`` (the run shows it on its progress lines) once.
        self.aliases: dict[str, str] = {}
        self.on_alias: Callable[[str], None] | None = None

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
        task = read_task(task_data(self._checked("submit", answer)), self.secrets)
        task_id = task.task_id
        if not isinstance(task_id, str) or not task_id:
            raise AmbiguousSubmit("submit: the service said OK but sent no task id", status=answer.status)
        problem = task_id_problem(task_id, self.secrets)
        if problem is not None:
            preview = one_line(service_text(task_id, self.secrets, TASK_ID_PREVIEW))
            raise AmbiguousSubmit(
                f"submit: the service said OK with an unusable task id ({problem}): {preview}; the task may exist",
                status=answer.status, hint="not tracked; check the APIDot dashboard, or --resubmit-unknown")
        return SubmitAnswer(task_id, task.status)

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
        status = task_status(task_id, task_data(payload), self.secrets)
        alias = status.alias
        if alias is not None and alias not in self.aliases:
            # Once per client (one per run): the word is worth knowing about, not on every answer.
            self.aliases[alias] = status.status
            said = f"the service says {one_line(alias)!r} for {status.status!r}; read as {status.status}"
            log.info("%s (logged once per run)", said)
            if self.on_alias is not None:
                self.on_alias(f"{said} (said once per run)")
        return status

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
            raise overdue(op, self._deadline) from None

    def _headers(self) -> dict[str, str]:
        # Only the encodings read_bounded can undo (httpx would also offer br/zstd when installed).
        return {"Authorization": f"Bearer {self._key}", "Accept-Encoding": "gzip, deflate"}

    def _checked(self, op: str, answer: _Answer) -> Mapping[str, Any]:
        error, payload = classify(op, answer.status, answer.headers, answer.content, self.secrets)
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
        raise UsageError("no API key", hint=f"set {KEY_ENV} in the environment or a .env file")
    if not (api_key.isascii() and api_key.isprintable()):
        raise UsageError(f"{KEY_ENV} has characters an HTTP header cannot carry (non-ASCII or control)",
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
        raise UsageError(f"{URL_ENV} must be an http(s) URL, got {base_url!r}",
                         hint="e.g. https://api.apidot.ai or http://127.0.0.1:8750")
