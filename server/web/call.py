"""One RPC received over HTTP, seen by the RPC adapter as a ``grpc.aio.ServicerContext``.

The adapters of ``server/rpc.py`` serve gRPC and the browser protocols alike: they are handed
this context instead of grpc's. ``write`` forwards each encoded message to the protocol's
response, ``abort`` records the status and raises ``grpc.aio.AbortError`` as grpc's does, and
the request headers are the invocation metadata (``-bin`` values base64-decoded).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, NoReturn

import grpc
import grpc.aio

# grpc-timeout units (the gRPC over HTTP/2 spec), in seconds
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# request headers that are HTTP's, not the caller's metadata
_NOT_METADATA = frozenset(
    {"content-type", "content-length", "host", "connection", "accept", "accept-encoding", "te", "origin"}
)

Writer = Callable[[bytes], Awaitable[None]]
HeaderSink = Callable[[tuple[tuple[str, str | bytes], ...]], Awaitable[None]]


def parse_timeout(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``connect-timeout-ms`` or ``grpc-timeout``; None without either; ValueError if bad."""
    connect = headers.get("connect-timeout-ms")
    if connect is not None:
        if not connect.isdigit() or len(connect) > 10:
            raise ValueError(f"connect-timeout-ms must be a positive integer, got {connect!r}")
        return int(connect) / 1000
    value = headers.get("grpc-timeout")
    if value is None:
        return None
    amount, unit = value[:-1], value[-1:]
    if not amount.isdigit() or len(amount) > 8 or unit not in _TIMEOUT_UNITS:
        raise ValueError(f"grpc-timeout must be up to 8 digits and a unit of H M S m u n, got {value!r}")
    return int(amount) * _TIMEOUT_UNITS[unit]


def request_metadata(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str | bytes], ...]:
    """The caller's metadata from HTTP request headers; a ``-bin`` value that is not base64 is dropped."""
    pairs: list[tuple[str, str | bytes]] = []
    for key, value in headers:
        key = key.lower()
        if key in _NOT_METADATA:
            continue
        if key.endswith("-bin"):
            try:
                pairs.append((key, base64.b64decode(value + "=" * (-len(value) % 4))))
            except (binascii.Error, ValueError):
                continue
        else:
            pairs.append((key, value))
    return tuple(pairs)


class HttpCall(grpc.aio.ServicerContext):  # type: ignore[type-arg]
    """The context of one HTTP-served RPC: metadata in, messages and a status out."""

    def __init__(
        self,
        *,
        metadata: tuple[tuple[str, str | bytes], ...],
        peer: str,
        timeout: float | None,
        write: Writer,
        send_headers: HeaderSink,
        serializer: Callable[[Any], bytes] | None = None,
        max_send_bytes: int | None = None,
    ) -> None:
        self._metadata = metadata
        self._peer = peer
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self._write = write
        self._send_headers = send_headers
        self._serializer = serializer
        self._max_send_bytes = max_send_bytes
        self.status_code = grpc.StatusCode.OK
        self.status_details = ""
        self._trailers: tuple[tuple[str, str | bytes], ...] = ()
        self._done = False

    # -- what the adapters and RpcContext use ---------------------------------------------------

    async def write(self, message: Any) -> None:
        data = message if self._serializer is None else self._serializer(message)
        if self._max_send_bytes is not None and len(data) > self._max_send_bytes:
            await self.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"a response message of {len(data)} bytes is over the limit of {self._max_send_bytes}",
            )
        await self._write(data)

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        self.status_code, self.status_details = code, details
        if trailing_metadata:
            self._trailers = tuple(trailing_metadata)
        raise grpc.aio.AbortError()

    async def abort_with_status(self, status: Any) -> NoReturn:
        await self.abort(status.code, status.details, status.trailing_metadata)

    async def send_initial_metadata(self, initial_metadata: Any) -> None:
        await self._send_headers(tuple(initial_metadata))

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        self._trailers = tuple(trailing_metadata)

    def trailing_metadata(self) -> Any:
        return self._trailers

    def invocation_metadata(self) -> Any:
        return grpc.aio.Metadata(*self._metadata)

    def time_remaining(self) -> Any:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def peer(self) -> str:
        return self._peer

    def code(self) -> Any:
        return self.status_code

    def details(self) -> Any:
        return self.status_details

    def set_code(self, code: grpc.StatusCode) -> None:
        self.status_code = code

    def set_details(self, details: str) -> None:
        self.status_details = details

    def auth_context(self) -> Mapping[str, Iterable[bytes]]:
        return {}  # client certificates are a gRPC-port feature

    def peer_identities(self) -> Iterable[bytes] | None:
        return None

    def peer_identity_key(self) -> str | None:
        return None

    def set_compression(self, compression: grpc.Compression) -> None:
        """Compression of HTTP responses is left to the HTTP layer: a no-op here."""

    def disable_next_message_compression(self) -> None:
        """See :meth:`set_compression`."""

    async def read(self) -> NoReturn:
        raise NotImplementedError("request streams are served over gRPC only")

    def add_done_callback(self, callback: Any) -> None:
        raise NotImplementedError("done callbacks are not offered for HTTP-served RPCs")

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return self._done
