"""Wires the TestService handlers into mediators and an App.

``python -m server --app examples.interop:create_app`` serves it.
"""

from __future__ import annotations

import cqrs
from examples.interop.handlers import (
    CacheableUnaryCall,
    CacheableUnaryCallHandler,
    EmptyCallHandler,
    FullDuplexCall,
    FullDuplexCallHandler,
    HalfDuplexCall,
    HalfDuplexCallHandler,
    StreamingInputCallHandler,
    StreamingOutputCallHandler,
    UnaryCallHandler,
)
from server import App
from src.proto.grpc.testing import test_pb2
from src.proto.grpc.testing.empty_cqrs import Empty
from src.proto.grpc.testing.messages_cqrs import (
    SimpleRequest,
    StreamingInputCallRequest,
    StreamingOutputCallRequest,
)

SERVICE = "grpc.testing.TestService"
# Empty, SimpleRequest and StreamingOutputCallRequest are each taken by several RPCs: each such RPC
# is bound by name, to the generated class or to a subclass of it (handlers.py).
# UnimplementedCall stays unserved, as the interop cases expect (UNIMPLEMENTED).
BINDINGS: dict[str, type[cqrs.Request] | None] = {
    f"{SERVICE}/EmptyCall": Empty,
    f"{SERVICE}/UnaryCall": SimpleRequest,
    f"{SERVICE}/CacheableUnaryCall": CacheableUnaryCall,
    f"{SERVICE}/StreamingOutputCall": StreamingOutputCallRequest,
    f"{SERVICE}/FullDuplexCall": FullDuplexCall,
    f"{SERVICE}/HalfDuplexCall": HalfDuplexCall,
    f"{SERVICE}/UnimplementedCall": None,
}


def create_app() -> App:
    """``grpc.testing.TestService`` served through the mediators (``--app examples.interop:create_app``).

    Only TestService is served: UnimplementedService and ReconnectService of test.proto are not.
    """

    def bind_unary(m: cqrs.RequestMap) -> None:
        m.bind(Empty, EmptyCallHandler)
        m.bind(SimpleRequest, UnaryCallHandler)
        m.bind(CacheableUnaryCall, CacheableUnaryCallHandler)
        m.bind(StreamingInputCallRequest, StreamingInputCallHandler)

    def bind_streams(m: cqrs.RequestMap) -> None:
        m.bind(StreamingOutputCallRequest, StreamingOutputCallHandler)
        m.bind(FullDuplexCall, FullDuplexCallHandler)
        m.bind(HalfDuplexCall, HalfDuplexCallHandler)

    app = App(
        mediator=cqrs.bootstrap(commands_mapper=bind_unary),
        streaming_mediator=cqrs.bootstrap_streaming(commands_mapper=bind_streams),
    )
    app.add_services(test_pb2, bindings=BINDINGS, services=[SERVICE])
    return app
