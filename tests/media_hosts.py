"""Media hosts of the tests' own, on loopback: a scriptable file server and one that never answers.

:class:`MediaHost` is a real Starlette app served with ``serve_in_thread`` (real HTTP,
no mocks). Each path is a :class:`Served` file (its type, size, validators), a redirect,
or a bare status; a host may refuse HEAD (405, or 403 as GET-only signed URLs do) and
answer a one-byte ranged GET instead. Every request is recorded (method, path, query,
headers), so a test proves what reached the host: how many requests, which validators,
and that no credential ever did.

:func:`silent_host` accepts connections and never says a word; :func:`greedy_host`
refuses HEAD and answers any GET with the whole (endless) file, counting what the
kernel took from it before the client hung up.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from seedance_batch.serving import serve_in_thread


@dataclass(frozen=True)
class Served:
    """What one path answers. ``status`` other than 200: that status, nothing else."""

    content_type: str | None = "image/png"
    size: int = 1000
    etag: str | None = None
    last_modified: str | None = None
    head_status: int | None = None  # HEAD refused with this (405, 403...)
    redirect: str | None = None     # a 302 to this Location
    status: int = 200
    send_length: bool = True        # say Content-Length on HEAD (and a full GET)
    delay: float = 0.0              # seconds before answering (a far-away host)


@dataclass(frozen=True)
class Seen:
    """One request as the host received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class MediaHost:
    """The scriptable host: ``files`` by path; ``url(path)`` while it serves."""

    files: dict[str, Served] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    base_url: str = ""

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    @contextmanager
    def serve(self) -> Iterator[MediaHost]:
        app = Starlette(routes=[Route("/{path:path}", self._answer, methods=["GET", "HEAD"])])
        with serve_in_thread(app) as base_url:
            self.base_url = base_url
            yield self

    async def _answer(self, request: Request) -> Response:
        self.seen.append(Seen(request.method, request.url.path, request.url.query, dict(request.headers)))
        served = self.files.get(request.url.path)
        if served is None:
            return Response(status_code=404)
        if served.delay:
            await asyncio.sleep(served.delay)
        if served.redirect is not None:
            return Response(status_code=302, headers={"location": served.redirect})
        if served.status != 200:
            return Response(status_code=served.status)
        if request.method == "HEAD" and served.head_status is not None:
            return Response(status_code=served.head_status)
        validators = {k: v for k, v in (("etag", served.etag), ("last-modified", served.last_modified)) if v}
        if served.etag is not None and request.headers.get("if-none-match") == served.etag:
            return Response(status_code=304, headers=validators)
        headers = {**validators, **({"content-type": served.content_type} if served.content_type else {})}
        if request.method == "GET" and request.headers.get("range") == "bytes=0-0":
            return Response(b"\0", status_code=206, headers={**headers, "content-range": f"bytes 0-0/{served.size}"})
        if served.send_length:
            headers["content-length"] = str(served.size)
        if request.method == "HEAD":
            return _Head(headers)
        return Response(b"\0" * served.size, headers=headers)


class _Head(Response):
    """A HEAD answer that says a Content-Length (or none) without Starlette adding its own."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(b"", headers=headers)
        if "content-length" not in headers:
            self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]


@contextmanager
def silent_host() -> Iterator[str]:
    """``http://127.0.0.1:PORT``: a host that accepts connections, reads nothing and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


@dataclass
class Sent:
    """Body bytes a :func:`greedy_host` got onto the wire, and whether it is done sending."""

    bytes: int = 0
    done: threading.Event = field(default_factory=threading.Event)


@contextmanager
def greedy_host(size: int, content_type: str = "video/mp4") -> Iterator[tuple[str, Sent]]:
    """A host whose HEAD is 405 and whose GET ignores ``Range``: 200 and ``size`` bytes, a MiB at a time."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    sent = Sent()

    def serve() -> None:
        while not sent.done.is_set():
            conn, _ = listener.accept()
            with conn:
                head = conn.recv(65536)
                if head.startswith(b"HEAD"):
                    conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                    continue
                conn.sendall(f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {size}\r\n"
                             "connection: close\r\n\r\n".encode())
                try:
                    while sent.bytes < size:
                        conn.sendall(b"\0" * (1 << 20))
                        sent.bytes += 1 << 20
                except OSError:
                    pass  # the client hung up: what it never read stops here
                sent.done.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", sent
    finally:
        listener.close()
        thread.join(timeout=5)
