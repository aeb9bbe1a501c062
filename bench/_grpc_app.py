"""The benchmark RPC served by this project: ``python -m server --app bench._grpc_app:create_app``,
or on asyncio's default loop with ``python -m bench._grpc_app --port P``.

The handler lives in bench/_stream_handlers.py, shared with the python-cqrs server. Needs the
generated ``benchgrpc`` package on the path (bench/_grpc_gen.py).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from benchgrpc.v1 import bench_pb2

import cqrs
from bench._stream_handlers import StreamItemsHandler, StreamItemsRequest, bind_events
from cqrs.requests import bootstrap
from server.app import App


def create_app() -> App:
    mediator = bootstrap.bootstrap_streaming(
        di_container=cqrs.Container(),
        commands_mapper=lambda m: m.bind(StreamItemsRequest, StreamItemsHandler),
        domain_events_mapper=bind_events,
    )
    app = App(streaming_mediator=mediator)
    app.add_services(bench_pb2)
    return app


async def _serve_default_loop(port: int) -> None:
    running = await create_app().start(f"127.0.0.1:{port}")
    print(f"serving address=127.0.0.1:{port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await running.stop(1)


def main() -> None:
    """``python -m bench._grpc_app --port P``: serve the app on asyncio's default loop (bench/paired.py)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(_serve_default_loop(parser.parse_args().port))


if __name__ == "__main__":
    main()
