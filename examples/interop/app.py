"""Wires the TestService handlers into mediators and an App.

``python -m server --app examples.interop:create_app`` serves it.
"""

from __future__ import annotations

import cqrs
from examples.interop.handlers import (
    CacheableUnaryCallHandler,
    EmptyCallHandler,
    FullDuplexCallHandler,
    HalfDuplexCallHandler,
    StreamingInputCallHandler,
    StreamingOutputCallHandler,
    UnaryCallHandler,
)
from examples.interop.messages import (
    CacheableRequest,
    EmptyCallRequest,
    FullDuplexRequest,
    HalfDuplexRequest,
    SimpleRequest,
    StreamingInputCallRequest,
    StreamingOutputCallRequest,
)
from server import App
from src.proto.grpc.testing import test_pb2

SERVICE = "grpc.testing.TestService"
# Empty, SimpleRequest and StreamingOutputCallRequest are each taken by several RPCs: each such RPC
# is bound by name. UnimplementedCall stays unserved, as the interop cases expect (UNIMPLEMENTED).
BINDINGS: dict[str, type[cqrs.Request] | None] = {
    f"{SERVICE}/EmptyCall": EmptyCallRequest,
    f"{SERVICE}/UnaryCall": SimpleRequest,
    f"{SERVICE}/CacheableUnaryCall": CacheableRequest,
    f"{SERVICE}/StreamingOutputCall": StreamingOutputCallRequest,
    f"{SERVICE}/FullDuplexCall": FullDuplexRequest,
    f"{SERVICE}/HalfDuplexCall": HalfDuplexRequest,
    f"{SERVICE}/UnimplementedCall": None,
}


def create_app() -> App:
    """``grpc.testing.TestService`` served through the mediators (``--app examples.interop:create_app``).

    Only TestService is served: UnimplementedService and ReconnectService of test.proto are not.
    """

    def bind_unary(m: cqrs.RequestMap) -> None:
        m.bind(EmptyCallRequest, EmptyCallHandler)
        m.bind(SimpleRequest, UnaryCallHandler)
        m.bind(CacheableRequest, CacheableUnaryCallHandler)
        m.bind(StreamingInputCallRequest, StreamingInputCallHandler)

    def bind_streams(m: cqrs.RequestMap) -> None:
        m.bind(StreamingOutputCallRequest, StreamingOutputCallHandler)
        m.bind(FullDuplexRequest, FullDuplexCallHandler)
        m.bind(HalfDuplexRequest, HalfDuplexCallHandler)

    app = App(
        mediator=cqrs.bootstrap(commands_mapper=bind_unary),
        streaming_mediator=cqrs.bootstrap_streaming(commands_mapper=bind_streams),
    )
    app.add_services(test_pb2, bindings=BINDINGS, services=[SERVICE])
    return app
