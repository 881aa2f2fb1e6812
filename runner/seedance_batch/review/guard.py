"""What keeps the review app to its reviewer: the Host check, the session key, cross-site refusals.

The app serves on 127.0.0.1 by default, but a loopback port is reachable by every web
page the reviewer's browser opens and by every user of the machine. So, for every request:

- **Host**: only the bound address, or a loopback name for a loopback address (with
  the right port). A DNS-rebinding page (``evil.example`` made to resolve to
  127.0.0.1) sends its own name as Host and is refused: its script never reads a page.
  Bound to 0.0.0.0 (``--listen``), any IP address is a Host, still no other name.
- **Sec-Fetch-Site**: a request a browser says came from another site (``cross-site``,
  or ``same-site``: another port of the same host is the same site) is refused.
- **The session key**: a random token made at start-up, in the URL the command prints.
  Opening that URL sets it as a cookie (HttpOnly, SameSite=Strict, named after the port)
  and redirects to the bare page; every other request needs that cookie. Other users
  of the machine, and other sites, do not have it.
- **Every POST** (each a decision) also carries the token in an ``X-Review-Token`` header,
  which only the page's own script can read from the page; compared in constant time.
  Its ``Origin``, when sent, must be this server's; its body must be JSON.

Every answer carries a Content-Security-Policy allowing only this server's own script,
style and media, and headers that keep other origins from framing or embedding it.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

__all__ = ["SECURITY_HEADERS", "TOKEN_HEADER", "Guard", "GuardMiddleware", "new_token"]

TOKEN_HEADER = "x-review-token"
# Only this server's own files; no inline script (the page passes its data in data-* attributes).
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1"})
# What Sec-Fetch-Site may say: the page itself, or the user (a typed or printed URL, a bookmark).
_OWN_GET = frozenset({"same-origin", "none"})
_OWN_POST = frozenset({"same-origin"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def new_token() -> str:
    """A session key: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Guard:
    """One review session's rules: its token, and the address it serves on.

    The port is the one a request came in on (the ASGI scope's ``server``): the guard is
    made before the socket is bound, and port 0 means any free port.
    """

    token: str
    host: str

    @staticmethod
    def cookie(port: int) -> str:
        """The session cookie's name: one per port (browsers do not keep cookies apart by port)."""
        return f"seedance_review_{port}"

    def host_ok(self, header: str | None, port: int) -> bool:
        """A Host header naming this server (no DNS name but the loopback one)."""
        if not header:
            return False
        name, sep, given = header.strip().lower().rpartition(":")
        if not sep or given != str(port) or name.startswith("["):
            return False
        if name == self.host or (name in _LOOPBACK_NAMES and _is_loopback(self.host)):
            return True
        return self.host == "0.0.0.0" and _is_ipv4(name)

    def origin_ok(self, origin: str | None, port: int) -> bool:
        """No Origin (not a browser), or this server's own."""
        if origin is None:
            return True
        scheme, sep, rest = origin.partition("://")
        return scheme == "http" and bool(sep) and "/" not in rest and self.host_ok(rest, port)

    def token_ok(self, offered: str | None) -> bool:
        """``offered`` is the session's token (compared in constant time)."""
        return offered is not None and hmac.compare_digest(offered.encode("utf-8", "replace"),
                                                           self.token.encode("utf-8"))

    def refusal(self, method: str, headers: dict[str, str], query: str, port: int) -> str | None:
        """Why a request is refused (one line), or None. ``headers``: lowercased names, last value wins."""
        if not self.host_ok(headers.get("host"), port):
            return "this server answers only to its own address (Host)"
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in (_OWN_POST if method == "POST" else _OWN_GET):
            return "requests from other sites are refused"
        if method == "POST":
            if not self.origin_ok(headers.get("origin"), port):
                return "requests from other origins are refused"
            if not self.token_ok(headers.get(TOKEN_HEADER)):
                return "a decision needs the page's session key (reload the page)"
        if self.token_ok(_cookie(headers.get("cookie"), self.cookie(port))) or self.token_ok(_query_token(query)):
            return None
        return "open the review with the link `seedance-batch review` printed (it carries the session key)"


class GuardMiddleware:
    """Applies a :class:`Guard` to every HTTP request; adds the security headers to every answer.

    A valid ``?token=`` on a GET sets the session cookie and redirects to the same path
    without it, so the key leaves the address bar (and the browser's history).
    """

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app, self.guard = app, guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        method, port = scope["method"], int((scope.get("server") or ("", 0))[1] or 0)
        refused = self.guard.refusal(method, headers, query, port)
        if refused is not None:
            await _answer(send, 403, refused.encode())
            return
        if method == "GET" and _query_token(query) is not None:
            cookie = f"{self.guard.cookie(port)}={self.guard.token}; HttpOnly; SameSite=Strict; Path=/"
            await _answer(send, 303, b"", ((b"location", quote(scope["path"] or "/").encode()),
                                           (b"set-cookie", cookie.encode())))
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, secured)


async def _answer(send: Send, status: int, text: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(text)).encode()),
        (b"cache-control", b"no-store"), *SECURITY_HEADERS, *extra]})
    await send({"type": "http.response.body", "body": text})


def _cookie(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def _query_token(query: str) -> str | None:
    values = parse_qs(query).get("token")
    return values[-1] if values else None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _is_ipv4(name: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(name), ipaddress.IPv4Address)
    except ValueError:
        return False
