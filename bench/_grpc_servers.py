"""The hand-written servers of the gRPC benchmark, run as a script (never imported as ``bench.*``).

    python bench/_grpc_servers.py baseline --port P   # a bare grpc.aio servicer, default event loop
    python bench/_grpc_servers.py pycqrs --port P     # python-cqrs 5.3 behind a hand-written servicer
    python bench/_grpc_servers.py baseline --uvloop --port P   # the baseline on uvloop: a reference row

It runs as a file so that ``import cqrs`` finds the interpreter's own ``cqrs``: with
bench/.venvs/python-cqrs-grpc/bin/python that is python-cqrs 5.3, not this repository's package.
The generated ``benchgrpc`` package must be on PYTHONPATH. The python-cqrs server runs the
handler of bench/_stream_handlers.py, the same code the project's server runs.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
from benchgrpc.v1 import bench_pb2, bench_pb2_grpc

StreamItem = bench_pb2.StreamItem


class BaselineServicer(bench_pb2_grpc.BenchServiceServicer):
    async def StreamItems(self, request: Any, context: Any) -> AsyncIterator[Any]:
        payload = b"x" * request.payload_size
        hold = request.hold_ms
        for index in range(1, request.count + 1):
            yield StreamItem(index=index, payload=payload)
            if index == 1 and hold:
                await asyncio.sleep(hold / 1000)


def pycqrs_servicer() -> Any:
    try:
        from cqrs.bootstrap.requests import bootstrap_streaming
    except ImportError:  # pragma: no cover - guards against running it with this project's cqrs
        raise SystemExit("pycqrs server: this interpreter's cqrs is not python-cqrs 5.x") from None

    # run as a script, bench/ is on sys.path: the same handler code as the project's server
    from _stream_handlers import PlainContainer, StreamItemsHandler, StreamItemsRequest, bind_events

    mediator = bootstrap_streaming(
        di_container=PlainContainer(),
        commands_mapper=lambda m: m.bind(StreamItemsRequest, StreamItemsHandler),
        domain_events_mapper=bind_events,
    )

    class PyCqrsServicer(bench_pb2_grpc.BenchServiceServicer):
        async def StreamItems(self, request: Any, context: Any) -> AsyncIterator[Any]:
            command = StreamItemsRequest(
                count=request.count,
                payload_size=request.payload_size,
                with_event=request.with_event,
                hold_ms=request.hold_ms,
            )
            async for result in mediator.stream(command):
                yield StreamItem(index=result.index, payload=result.payload)

    return PyCqrsServicer()


async def serve(kind: str, port: int) -> None:
    server = grpc.aio.server()
    servicer = BaselineServicer() if kind == "baseline" else pycqrs_servicer()
    bench_pb2_grpc.add_BenchServiceServicer_to_server(servicer, server)
    if server.add_insecure_port(f"127.0.0.1:{port}") != port:
        raise SystemExit(f"{kind} server: cannot bind 127.0.0.1:{port}")
    await server.start()
    print(f"serving address=127.0.0.1:{port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["baseline", "pycqrs"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (a reference, not the baseline)")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(serve(args.kind, args.port))
    else:
        asyncio.run(serve(args.kind, args.port))


if __name__ == "__main__":
    main()
