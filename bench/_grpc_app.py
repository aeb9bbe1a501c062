"""The benchmark RPC served by this project: ``python -m server --app bench._grpc_app:create_app``.

The handler lives in bench/_stream_handlers.py, shared with the python-cqrs server. Needs the
generated ``benchgrpc`` package on the path (bench/_grpc_gen.py).
"""

from __future__ import annotations

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
