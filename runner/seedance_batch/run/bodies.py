"""Bodies read within a bound: what the client reads of an answer, and a download streams.

Nothing a server sends is trusted to be small: a body is bounded *while it streams*,
raw and decoded; a ``Content-Encoding`` (gzip, deflate) is undone here, chunk by chunk,
with the bound applied to what it inflates to, so a gzip bomb costs the bound at most.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import httpx

__all__ = ["CHUNK", "BodyError", "BodyTooLarge", "Inflater", "read_bounded"]

CHUNK = 1 << 16
# The most decoded bytes produced from one network chunk at a time: deflate inflates up
# to ~1000x, so a 64 KiB chunk of a gzip bomb could otherwise be 64 MiB in memory at once.
PIECE = 1 << 20
# Encodings undone here; anything else cannot be checked, so it is refused (we ask for identity).
_GZIP = ("gzip", "x-gzip")
_DEFLATE = ("deflate",)


class BodyError(ValueError):
    """A body past its bound, or whose Content-Encoding cannot be undone."""


class BodyTooLarge(BodyError):
    """A body past its bound."""


class Inflater:
    """Undoes a ``Content-Encoding`` chunk by chunk, never producing more than ``limit`` bytes.

    Raises :class:`BodyError` past ``limit``, on an unknown encoding, on a corrupt or
    truncated compressed stream.
    """

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in _GZIP + _DEFLATE):
            raise BodyError(f"a Content-Encoding that cannot be undone here ({', '.join(codings)[:60]!r})")
        self._coding = codings[0] if codings else None
        self._limit = limit
        self._made = 0
        self._z = self._new()
        self._first = True

    def _new(self) -> zlib._Decompress | None:
        if self._coding in _GZIP:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj() if self._coding else None

    def feed(self, raw: bytes) -> Iterator[bytes]:
        """The decoded bytes ``raw`` stands for, in pieces of at most :data:`PIECE`."""
        if self._z is None:
            yield from self._count(raw)
            return
        try:
            yield from self._inflate(raw)
        except zlib.error:
            if not (self._first and self._made == 0 and self._coding in _DEFLATE):
                raise BodyError("a compressed body that cannot be decompressed") from None
            # "deflate" is sent both zlib-wrapped (as specified) and raw (as IIS did): try raw.
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            self._first = False
            yield from self.feed(raw)
        self._first = False

    def _inflate(self, raw: bytes) -> Iterator[bytes]:
        assert self._z is not None
        data = raw
        while True:
            if self._z.eof:  # a gzip member ended; gzip allows another one to follow it
                data = self._z.unused_data + data
                if not data or self._coding not in _GZIP:
                    return  # what follows a finished deflate stream is ignored, as httpx does
                self._z = self._new()
                assert self._z is not None
            room = min(self._limit - self._made + 1, PIECE)
            out = self._z.decompress(data, room)
            yield from self._count(out)
            data = self._z.unconsumed_tail
            if not data and len(out) < room and not self._z.eof:
                return  # all input taken and no output pending

    def _count(self, piece: bytes) -> Iterator[bytes]:
        self._made += len(piece)
        if self._made > self._limit:
            raise BodyTooLarge(f"more than {self._limit} bytes once decoded")
        if piece:
            yield piece

    def end(self) -> None:
        """The body is over: refuse a compressed stream cut short."""
        if self._z is not None and not self._z.eof:
            raise BodyError("a compressed body that ended early")


async def read_bounded(response: httpx.Response, limit: int) -> bytes:
    """The decoded body of a streamed ``response``, at most ``limit`` bytes (raw and decoded).

    Raises :class:`BodyError` past the limit or on an encoding that cannot be undone.
    """
    try:
        whole = response.content  # a transport that built the answer whole (httpx.MockTransport)
    except httpx.ResponseNotRead:
        pass
    else:
        if len(whole) > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
        return whole
    inflater = Inflater(response.headers.get("content-encoding"), limit)
    parts: list[bytes] = []
    raw = 0
    async for chunk in response.aiter_raw(CHUNK):
        raw += len(chunk)
        if raw > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
        parts.extend(inflater.feed(chunk))
    inflater.end()
    return b"".join(parts)
