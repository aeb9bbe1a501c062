"""The load benchmark's baseline: streamtest.v1.TickService written by hand on grpc.aio.

Same proto, same messages, no framework: what ``server.App`` is compared against.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc

from streamtest.v1 import stream_test_pb2, stream_test_pb2_grpc


class TickService(stream_test_pb2_grpc.TickServiceServicer):
    async def Ticks(
        self, request: stream_test_pb2.TicksCommand, context: Any
    ) -> AsyncIterator[stream_test_pb2.Tick]:
        payload = b"x" * request.payload_bytes
        for seq in range(1, request.count + 1):
            yield stream_test_pb2.Tick(seq=seq, payload=payload)


async def main(address: str) -> None:
    server = grpc.aio.server()
    stream_test_pb2_grpc.add_TickServiceServicer_to_server(TickService(), server)
    port = server.add_insecure_port(address)
    await server.start()
    print(f"serving address=127.0.0.1:{port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:0"))
