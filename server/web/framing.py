"""The byte layouts of the browser protocols: length-prefixed envelopes, trailers, SSE events.

gRPC-Web and Connect streaming frame every message as one flag byte, a big-endian 4-byte
length and the payload. gRPC-Web ends with a trailer frame (flag ``0x80``) of ``key: value``
lines; Connect streaming ends with an end-of-stream frame (flag ``0x02``) holding JSON.
"""

from __future__ import annotations

import base64
import struct
import urllib.parse
from collections.abc import Iterable

MESSAGE = 0x00
COMPRESSED = 0x01
CONNECT_END = 0x02
GRPC_WEB_TRAILERS = 0x80
_HEADER = struct.Struct(">BI")


class FramingError(ValueError):
    """The request body is not a sequence of well-formed envelopes."""


def envelope(payload: bytes, flags: int = MESSAGE) -> bytes:
    """One frame: ``flags``, the payload's length, the payload."""
    return _HEADER.pack(flags, len(payload)) + payload


def unframe(body: bytes) -> list[tuple[int, bytes]]:
    """Every ``(flags, payload)`` of ``body``; FramingError if a frame is cut short."""
    frames: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(body):
        if len(body) - offset < _HEADER.size:
            raise FramingError(f"a frame header needs {_HEADER.size} bytes, {len(body) - offset} left")
        flags, length = _HEADER.unpack_from(body, offset)
        offset += _HEADER.size
        if len(body) - offset < length:
            raise FramingError(f"a frame announces {length} bytes, {len(body) - offset} follow")
        frames.append((flags, body[offset : offset + length]))
        offset += length
    return frames


def grpc_web_trailers(code: int, message: str, trailers: Iterable[tuple[str, str | bytes]]) -> bytes:
    """The trailer frame that ends a gRPC-Web response (``grpc-message`` percent-encoded)."""
    lines = [f"grpc-status: {code}"]
    if message:
        lines.append(f"grpc-message: {urllib.parse.quote(message, safe=' ')}")
    lines += [f"{key}: {header_value(key, value)}" for key, value in trailers]
    return envelope(("\r\n".join(lines) + "\r\n").encode(), GRPC_WEB_TRAILERS)


def header_value(key: str, value: str | bytes) -> str:
    """A metadata value as an HTTP header value: ``-bin`` keys (and any bytes) base64-encoded."""
    if isinstance(value, bytes) or key.endswith("-bin"):
        raw = value if isinstance(value, bytes) else value.encode()
        return base64.b64encode(raw).decode()
    return value


def sse_event(data: str, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """One Server-Sent Event; ``data`` must be one line (JSON keeps newlines escaped)."""
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {data}")
    return ("\n".join(lines) + "\n\n").encode()
