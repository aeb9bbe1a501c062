"""A TCP relay between a client and a server that keeps what the server sent, to read the gRPC
messages as they were on the wire.

grpc clients decompress responses and drop ``grpc-encoding`` from the metadata they report, so
the one reliable observable of compression is the wire itself: each gRPC message is framed as a
1-byte compressed flag, a 4-byte length and the (possibly compressed) bytes, carried in HTTP/2
DATA frames. Frame headers are not HPACK-encoded, so no HTTP/2 library is needed to read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

_DATA = 0x0
_PADDED = 0x8


@dataclasses.dataclass(frozen=True)
class WireMessage:
    """One gRPC message of a response stream as sent: its compressed flag and its bytes."""

    stream_id: int
    compressed: bool
    body: bytes


class WireTap:
    """Relays connections to ``target`` and records every byte the server sent back."""

    def __init__(self, target: str) -> None:
        self._target_host, port = target.rsplit(":", 1)
        self._target_port = int(port)
        self._from_server = bytearray()
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def messages(self) -> list[WireMessage]:
        """The gRPC messages the server sent so far, per stream in order."""
        return _grpc_messages(_data_per_stream(bytes(self._from_server)))

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(self._target_host, self._target_port)

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, keep: bool) -> None:
            try:
                while chunk := await reader.read(65536):
                    if keep:
                        self._from_server += chunk
                    writer.write(chunk)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        await asyncio.gather(
            pump(client_reader, server_writer, keep=False), pump(server_reader, client_writer, keep=True)
        )


@contextlib.asynccontextmanager
async def wire_tap(target: str) -> AsyncIterator[WireTap]:
    """A ``WireTap`` listening on a free loopback port until the block ends."""
    tap = WireTap(target)
    relay = await asyncio.start_server(tap._relay, "127.0.0.1", 0)
    tap.port = relay.sockets[0].getsockname()[1]
    try:
        yield tap
    finally:
        relay.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(relay.wait_closed(), 1)


def _data_per_stream(wire: bytes) -> dict[int, bytes]:
    """The DATA payloads of the server's HTTP/2 frames, joined per stream (the server sends no preface)."""
    streams: dict[int, bytearray] = {}
    offset = 0
    while offset + 9 <= len(wire):
        length = int.from_bytes(wire[offset : offset + 3], "big")
        kind, flags = wire[offset + 3], wire[offset + 4]
        stream_id = int.from_bytes(wire[offset + 5 : offset + 9], "big") & 0x7FFFFFFF
        payload = wire[offset + 9 : offset + 9 + length]
        offset += 9 + length
        if kind != _DATA or len(payload) < length:
            continue
        if flags & _PADDED:
            payload = payload[1 : len(payload) - payload[0]]
        streams.setdefault(stream_id, bytearray()).extend(payload)
    return {stream_id: bytes(data) for stream_id, data in streams.items()}


def _grpc_messages(streams: dict[int, bytes]) -> list[WireMessage]:
    messages = []
    for stream_id, data in sorted(streams.items()):
        offset = 0
        while offset + 5 <= len(data):
            length = int.from_bytes(data[offset + 1 : offset + 5], "big")
            body = data[offset + 5 : offset + 5 + length]
            messages.append(WireMessage(stream_id, data[offset] == 1, body))
            offset += 5 + length
    return messages
