"""A stand-in APIDot that misbehaves on purpose: each test scripts its bad answers.

A real Starlette app served over loopback with the simulator's ``serve_in_thread``
(no mocks): the client under test speaks real HTTP to it. By default it behaves
(submit -> ``task-1``, status -> finished with a file URL, the file -> the sample
MP4); a test replaces ``submit``, ``status`` or ``file`` with a handler of its own.
Every request is recorded (method, raw path, headers), those to unknown paths too,
so a test can prove what reached the server and what did not.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from seedance_batch.serving import serve_in_thread
from seedance_batch.simulator.assets import sample_mp4

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    raw_path: bytes
    authorization: str | None
    body: bytes


@dataclass
class HostileApi:
    """The scriptable server. Use :meth:`serve`; ``base_url`` is set while it serves."""

    submit: Handler | None = None
    status: Handler | None = None
    file: Handler | None = None
    seen: list[Seen] = field(default_factory=list)
    base_url: str = ""

    @contextmanager
    def serve(self) -> Iterator[str]:
        routes = [
            Route("/api/generate/submit", self._on("submit"), methods=["POST"]),
            Route("/api/generate/status/{task_id:path}", self._on("status"), methods=["GET"]),
            Route("/files/{name:path}", self._on("file"), methods=["GET"]),
            Route("/{rest:path}", self._stray, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ]
        with serve_in_thread(Starlette(routes=routes)) as url:
            self.base_url = url
            yield url

    def _on(self, name: str) -> Handler:
        async def endpoint(request: Request) -> Response:
            await self._record(request)
            handler = getattr(self, name) or getattr(self, f"_default_{name}")
            return await handler(request)

        return endpoint

    async def _record(self, request: Request) -> None:
        self.seen.append(Seen(request.method, request.scope.get("raw_path", b""),
                              request.headers.get("authorization"), await request.body()))

    async def _stray(self, request: Request) -> Response:
        await self._record(request)
        return Response(status_code=404)

    async def _default_submit(self, request: Request) -> Response:
        return answer({"code": 200, "data": {"task_id": "task-1", "status": "not_started"}})

    async def _default_status(self, request: Request) -> Response:
        return answer(finished(request.path_params["task_id"], f"{self.base_url}/files/video.mp4"))

    async def _default_file(self, request: Request) -> Response:
        return Response(sample_mp4(), media_type="video/mp4")

    def paths(self) -> list[bytes]:
        """The raw path of every request received, in order."""
        return [s.raw_path for s in self.seen]


# --- answers ------------------------------------------------------------------------------------


def answer(payload: Any, status: int = 200) -> Response:
    """A JSON answer (any JSON value)."""
    return Response(json.dumps(payload), status_code=status, media_type="application/json")


def raw(body: bytes, status: int = 200, **headers: str) -> Response:
    """Exactly these bytes, with these headers."""
    return Response(body, status_code=status, headers=headers)


def finished(task_id: str, file_url: str, **extra: Any) -> dict[str, Any]:
    """A status answer of a finished task."""
    return {"code": 200, "data": {"task_id": task_id, "status": "finished", "error_message": None,
                                  "output": {"files": [{"file_url": file_url, "file_type": "video"}]}, **extra}}


def failed(task_id: str, message: str) -> dict[str, Any]:
    """A status answer of a failed task with its error message."""
    return {"code": 200, "data": {"task_id": task_id, "status": "failed", "error_message": message}}


def nested(depth: int) -> bytes:
    """A JSON object nested ``depth`` levels deep (past any parser's recursion limit)."""
    return b'{"a":' * depth + b"1" + b"}" * depth


def streamed(chunks: AsyncIterator[bytes], **headers: str) -> StreamingResponse:
    """A body sent chunk by chunk (chunked transfer: no Content-Length)."""
    return StreamingResponse(chunks, headers=headers)


async def endless(head: bytes = b"", *, total: int | None = None, chunk: int = 1 << 16) -> AsyncIterator[bytes]:
    """``head``, then zeros without end (or up to ``total`` bytes in all: "endless" for all a
    client can tell, and safe to run against a client that never stops reading)."""
    sent = len(head)
    if head:
        yield head
    while total is None or sent < total:
        yield b"\0" * chunk
        sent += chunk
        await asyncio.sleep(0)


async def gzip_bomb(head: bytes = b"", *, total_mib: int | None = None, fill: bytes = b"\0",
                    tail: bytes = b"") -> AsyncIterator[bytes]:
    """A gzip stream of ``head``, then ``fill`` without end (or ``total_mib`` MiB of it), then
    ``tail``: ~1 KB on the wire per MiB it inflates to. A finite one is a valid gzip file."""
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw deflate; the gzip framing is ours
    yield b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + z.compress(head) + z.flush(zlib.Z_FULL_FLUSH)
    mib = fill * ((1 << 20) // len(fill))
    # After a full flush each block stands alone, so one compressed MiB repeats as is.
    block = z.compress(mib) + z.flush(zlib.Z_FULL_FLUSH)
    crc, size, sent = zlib.crc32(head), len(head), 0
    while total_mib is None or sent < total_mib:
        yield block
        crc, size, sent = zlib.crc32(mib, crc), size + len(mib), sent + 1
        await asyncio.sleep(0)
    crc, size = zlib.crc32(tail, crc), size + len(tail)
    yield z.compress(tail) + z.flush() + struct.pack("<II", crc, size & 0xFFFFFFFF)


async def drip(head: bytes, *, every: float, count: int) -> AsyncIterator[bytes]:
    """``head`` at once, then one byte every ``every`` seconds, ``count`` times."""
    yield head
    for _ in range(count):
        await asyncio.sleep(every)
        yield b"\0"


def gzipped(data: bytes) -> bytes:
    """``data`` gzip-compressed (what a CDN sends with Content-Encoding: gzip)."""
    return gzip.compress(data)
