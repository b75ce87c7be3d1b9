"""Compressed request bodies (`Content-Encoding: gzip` or `deflate`), decoded as they arrive.

The body limit holds for the decoded bytes: decoding goes piece by piece with a bound on what
each step may produce, so a small compressed bomb is refused (413) after at most the limit has
been inflated, never after inflating all of it. Pure functions and one small decoder class;
every refusal names the encoding and the problem.
"""

from __future__ import annotations

import zlib

from eventstitch.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, clip

SUPPORTED_ENCODINGS = ("gzip", "deflate")
_GZIP = 16 + zlib.MAX_WBITS
_ZLIB = zlib.MAX_WBITS
_RAW_DEFLATE = -zlib.MAX_WBITS
_GZIP_MAGIC = b"\x1f\x8b"


def encoding_of(header: str | None) -> str | None:
    """The one content coding to undo, None for none (`identity` or no header); 415 for any
    other coding, or for several stacked."""
    if header is None:
        return None
    value = header.strip().lower()
    if value in ("", "identity"):
        return None
    if value == "x-gzip":
        return "gzip"
    if value in SUPPORTED_ENCODINGS:
        return value
    raise UnsupportedMediaType(
        f"content encoding {clip(header, 60)!r} is not supported; send the body as it is, "
        "or with one of: " + ", ".join(SUPPORTED_ENCODINGS),
        errors=[{"field": "content-encoding", "value": clip(header, 60)}],
        reason="unsupported_content_encoding",
    )


class BodyDecoder:
    """Undoes one content coding, chunk by chunk, refusing once the decoded size passes
    `limit`. `deflate` is the zlib format (what HTTP says and what curl, requests and httpx
    send); a raw deflate stream, which some senders send instead, is recognised by its first
    bytes."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.encoding = encoding
        self.limit = limit
        self.size = 0
        self._pending = b""  # deflate: bytes held until the format can be told
        self._stream: zlib._Decompress | None = (
            zlib.decompressobj(_GZIP) if encoding == "gzip" else None
        )

    def feed(self, data: bytes) -> bytes:
        """The decoded bytes of the next piece of the body."""
        data, self._pending = self._pending + data, b""
        if self._stream is None:
            if len(data) < 2:
                self._pending = data
                return b""
            self._stream = zlib.decompressobj(_ZLIB if _is_zlib(data) else _RAW_DEFLATE)
        out = []
        while data:
            stream = self._stream
            if stream.eof:  # the previous piece ended exactly at the end of a gzip member
                data = self._next_member(data)
                continue
            try:
                piece = stream.decompress(data, self.limit - self.size + 1)
            except zlib.error as exc:  # "Error -3 while decompressing data: <what>"
                raise self._corrupt(str(exc).rpartition(": ")[2]) from None
            self.size += len(piece)
            if self.size > self.limit:
                raise too_large(self.limit, self.encoding)
            out.append(piece)
            data = stream.unconsumed_tail
            if stream.eof:
                rest = stream.unused_data + data
                data = self._next_member(rest) if rest else b""
        return b"".join(out)

    def finish(self) -> None:
        """Refuse a stream that ended before its end marker (a truncated body)."""
        if self._pending:
            raise self._corrupt("the stream ends inside a header")
        if self._stream is None:
            return  # an empty body is an empty body, whatever its declared coding
        if not self._stream.eof:
            raise self._corrupt("the stream ends before its end marker (truncated)")

    def _next_member(self, data: bytes) -> bytes:
        """A gzip body may hold several members one after another; anything else after the
        end of the stream is refused."""
        if self.encoding == "gzip" and data.startswith(_GZIP_MAGIC):
            self._stream = zlib.decompressobj(_GZIP)
            return data
        if self.encoding == "gzip" and len(data) < 2 and _GZIP_MAGIC.startswith(data):
            self._pending = data  # the next member's first byte: wait for the second
            return b""
        raise self._corrupt("bytes follow the end of the compressed stream")

    def _corrupt(self, problem: str) -> BadRequest:
        return BadRequest(
            f"body is not valid {self.encoding} data: {clip(problem, 80)}",
            errors=[
                {"field": "body", "content-encoding": self.encoding, "problem": clip(problem, 80)}
            ],
            reason="bad_content_encoding",
        )


def decode(body: bytes, encoding: str, limit: int) -> bytes:
    """A body read whole (at most `limit` bytes on the wire) decoded under the same limit;
    at most `limit` + 1 decoded bytes are ever held."""
    decoder = BodyDecoder(encoding, limit)
    decoded = decoder.feed(body)
    decoder.finish()
    return decoded


def too_large(limit: int, encoding: str | None = None) -> PayloadTooLarge:
    """The 413 answer; for a compressed body it says the limit is on the decoded size."""
    if encoding is None:
        return PayloadTooLarge(
            f"body is larger than the limit of {limit} bytes",
            errors=[{"field": "body", "limit": limit}],
        )
    return PayloadTooLarge(
        f"body decoded from {encoding} is larger than the limit of {limit} bytes",
        errors=[{"field": "body", "limit": limit, "content-encoding": encoding}],
    )


def _is_zlib(data: bytes) -> bool:
    """Whether a deflate body starts with a zlib header (method 8, header checksum)."""
    return data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
