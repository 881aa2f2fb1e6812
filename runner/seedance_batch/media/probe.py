"""Asking a media host about one URL: what it is and how large, never the file itself.

A ``HEAD`` first; where a host refuses it (405, 501, or 403: a URL signed for GET
only) or does not say the size (or says 0), a ranged ``GET`` of one byte (``Range: bytes=0-0``,
the size read from ``Content-Range``). No body is ever read: the answer's headers
are all that is used and the connection is closed under whatever follows them, so a
host that answers the ranged GET with the whole file costs its first packets only.

Redirects are followed here, by hand, at most :attr:`MediaPolicy.max_redirects` of
them, only to http(s) (never ``file:``, ``data:`` or any other scheme), never in a
loop. The client (:func:`media_client`) sends no credentials: no API key (it never
sees one), no ``.netrc`` or proxy settings from the environment. One URL, every hop
and the ranged GET together, has :attr:`MediaPolicy.deadline_seconds`: a host that
never answers costs that at most.

What comes back is outside text: the content type, ``ETag`` and ``Last-Modified``
are kept only when short and printable; nothing else of the answer is kept.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpx

from .. import __version__
from ..safetext import bound, one_line
from .records import Facts, MediaPolicy, Probe

__all__ = ["media_client", "probe"]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
# A HEAD refused this way is asked again as a one-byte ranged GET.
HEAD_REFUSED = frozenset({403, 405, 501})
# Where a redirect's Location is handed to the check (see _HeldRedirects).
HELD_LOCATION = "x-seedance-held-location"
FOLLOWED_SCHEMES = ("http", "https")
# The longest content type, ETag or Last-Modified kept (real ones are tens of characters).
MAX_HEADER_KEPT = 200
_CONTENT_RANGE = re.compile(r"bytes\s+(?:\d+-\d+|\*)/(\d{1,19})", re.IGNORECASE)
_DIGITS = re.compile(r"\d{1,19}")


@dataclass(frozen=True, slots=True)
class _Answer:
    """The status and headers of the answer at the end of the redirects (its body never read)."""

    status: int
    headers: httpx.Headers


def media_client(policy: MediaPolicy, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The client the check asks with: no redirects of its own, no credentials, no environment.

    ``transport`` (tests, benchmarks) replaces the network; either way redirects come
    back held (:class:`_HeldRedirects`), so every hop is judged here, not by httpx.
    """
    timeout = httpx.Timeout(connect=policy.connect_seconds, read=policy.read_seconds,
                            write=policy.read_seconds, pool=policy.deadline_seconds)
    limits = httpx.Limits(max_connections=policy.concurrency, max_keepalive_connections=policy.concurrency,
                          keepalive_expiry=2.0)
    inner = transport or httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    headers = {"User-Agent": f"seedance-batch/{__version__} (source media check)",
               "Accept-Encoding": "identity"}  # sizes as stored, not as some encoding of them
    return httpx.AsyncClient(timeout=timeout, headers=headers, transport=_HeldRedirects(inner),
                             follow_redirects=False, trust_env=False)


class _HeldRedirects(httpx.AsyncBaseTransport):
    """Hands every answer back with its ``Location`` renamed (:data:`HELD_LOCATION`).

    httpx builds the next request of any redirect it sees, followed or not, and refuses
    one it cannot build (``data:``) before the answer reaches us; held, a redirect is
    only a status and a header, and :func:`_follow` decides what to do with it.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if HELD_LOCATION in response.headers:  # a host's own header of that name is not a redirect
            del response.headers[HELD_LOCATION]
        locations = response.headers.get_list("location")
        if locations:
            del response.headers["location"]
            response.headers[HELD_LOCATION] = locations[0]
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def probe(client: httpx.AsyncClient, url: str, policy: MediaPolicy, cached: Facts | None = None) -> Probe:
    """Ask about ``url``; with ``cached`` facts, conditionally (``If-None-Match``/``If-Modified-Since``).

    Never raises for anything the host or the network does: that is a :class:`Probe` problem.
    """
    asked = _Count()
    conditional = _validators(cached)
    with anyio.move_on_after(policy.deadline_seconds):
        try:
            return await _ask(client, url, policy, conditional, asked)
        except httpx.InvalidURL:
            return Probe(problem="is not a URL that can be asked for", requests=asked.n)
        except httpx.HTTPError as exc:
            return Probe(problem=_transport_problem(exc, policy), requests=asked.n)
    return Probe(problem=f"no answer within {policy.deadline_seconds:g} s", requests=asked.n)


class _Count:
    """Requests sent for one URL (redirect hops and the ranged GET included)."""

    def __init__(self) -> None:
        self.n = 0


async def _ask(client: httpx.AsyncClient, url: str, policy: MediaPolicy, conditional: Mapping[str, str],
               asked: _Count) -> Probe:
    answer = await _follow(client, "HEAD", url, conditional, policy, asked)
    if isinstance(answer, str):
        return Probe(problem=answer, requests=asked.n)
    # A HEAD that says no size (or 0: some servers say that of every HEAD) is asked once more, ranged.
    if answer.status in HEAD_REFUSED or (_ok(answer.status) and not _size(answer)):
        ranged = await _follow(client, "GET", url, {**conditional, "Range": "bytes=0-0"}, policy, asked)
        if isinstance(ranged, str):
            return Probe(problem=ranged, requests=asked.n)
        if _ok(ranged.status) or ranged.status == 304 or not _ok(answer.status):
            answer = ranged  # else the HEAD's answer stands: a ranged GET that failed adds nothing
    return _outcome(answer, conditional=bool(conditional), requests=asked.n)


async def _follow(client: httpx.AsyncClient, method: str, url: str, headers: Mapping[str, str],
                  policy: MediaPolicy, asked: _Count) -> _Answer | str:
    """The answer at the end of the redirects (only its headers), or what went wrong on the way."""
    seen = {url}
    current = url
    for _ in range(policy.max_redirects + 1):
        asked.n += 1
        async with client.stream(method, current, headers=headers) as response:  # the body is never read
            status, answer_headers = response.status_code, response.headers
        if status not in REDIRECTS:
            return _Answer(status, answer_headers)
        try:
            current = _redirect_target(current, answer_headers.get(HELD_LOCATION), status)
        except _NotFollowed as refused:
            return str(refused)
        if current in seen:
            return "redirects in a loop"
        seen.add(current)
    return f"redirects more than {policy.max_redirects} times"


class _NotFollowed(Exception):
    """A redirect that is not followed, and why (in the user's words)."""


def _redirect_target(current: str, location: str | None, status: int) -> str:
    """The absolute http(s) URL a redirect points at; :class:`_NotFollowed` for any other."""
    if not location or not location.strip():
        raise _NotFollowed(f"HTTP {status} redirect without a Location")
    location = location.strip()
    scheme = urlsplit(location).scheme.lower()
    if scheme and scheme not in FOLLOWED_SCHEMES:
        raise _NotFollowed(f"redirects to a {one_line(bound(scheme, 20))}: URL; only http and https are followed")
    try:
        target = str(httpx.URL(current).join(location))
    except httpx.InvalidURL:
        raise _NotFollowed("redirects to something that is not a URL") from None
    if urlsplit(target).scheme.lower() not in FOLLOWED_SCHEMES:
        raise _NotFollowed("redirects to a URL that is not http or https; only those are followed")
    return target


def _outcome(answer: _Answer, *, conditional: bool, requests: int) -> Probe:
    status = answer.status
    if _ok(status):
        return Probe(facts=_facts(answer), requests=requests)
    if status == 304 and conditional:
        return Probe(unchanged=True, requests=requests)
    return Probe(problem=_status_problem(status), requests=requests)


def _status_problem(status: int) -> str:
    if status in (404, 410):
        return f"not found (HTTP {status})"
    if status in (401, 403):
        return f"refused (HTTP {status}): the host does not let it be read (an expired or wrong signature?)"
    if status in (405, 501):
        return f"HTTP {status}: the host answers neither HEAD nor a ranged GET"
    return f"HTTP {status} from the host"


def _facts(answer: _Answer) -> Facts:
    headers = answer.headers
    content_type = _kept(headers.get("content-type"))
    media_type = content_type.split(";", 1)[0].strip().lower() if content_type else None
    return Facts(media_type or None, _size(answer), _kept(headers.get("etag")), _kept(headers.get("last-modified")))


def _size(answer: _Answer) -> int | None:
    """The file's size: ``Content-Range``'s total for a 206, else ``Content-Length``; None when not said."""
    headers = answer.headers
    if answer.status == 206:
        found = _CONTENT_RANGE.fullmatch(headers.get("content-range", "").strip())
        return int(found.group(1)) if found else None
    length = headers.get("content-length", "").strip()
    return int(length) if _DIGITS.fullmatch(length) else None


def _kept(value: str | None) -> str | None:
    """A header value worth keeping: short, printable ASCII (it may be sent back, or shown)."""
    if value is None or len(value) > MAX_HEADER_KEPT or not (value.isascii() and value.isprintable()):
        return None
    return value.strip() or None


def _validators(cached: Facts | None) -> dict[str, str]:
    if cached is None:
        return {}
    found = {"If-None-Match": cached.etag, "If-Modified-Since": cached.last_modified}
    return {name: value for name, value in found.items() if value}


def _ok(status: int) -> bool:
    return 200 <= status < 300


def _transport_problem(exc: httpx.HTTPError, policy: MediaPolicy) -> str:
    """What the network did, in the user's words (never the exception's own text whole)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no connection within {policy.connect_seconds:g} s"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {policy.read_seconds:g} s"
    if isinstance(exc, httpx.ConnectError):
        reason = _os_reason(exc)
        return f"cannot connect ({reason})" if reason else "cannot connect"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.LocalProtocolError)):
        return "the host's answer is not valid HTTP"
    if isinstance(exc, httpx.ReadError):
        return "the host closed the connection before answering"
    return f"cannot ask the host ({type(exc).__name__})"


def _os_reason(exc: BaseException) -> str | None:
    """The system's words for why a connection failed (``connection refused``), from the cause chain.

    Only the error's kind is said (its number's standard text, or a name lookup's), never
    its message: that may carry addresses or anything else the layers below put there.
    """
    seen: BaseException | None = exc
    for _ in range(10):  # a chain is a few links long; a cycle must not loop forever
        if seen is None:
            return None
        if isinstance(seen, socket.gaierror) and isinstance(seen.strerror, str):
            return bound(seen.strerror.lower(), 100)
        if isinstance(seen, OSError) and isinstance(seen.errno, int) and seen.errno > 0:
            return os.strerror(seen.errno).lower()
        seen = seen.__cause__ or seen.__context__
    return None
