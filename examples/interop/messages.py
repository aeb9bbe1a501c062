"""The Request and Response classes of ``grpc.testing.TestService``, mirroring messages.proto.

Each field mirrors the proto field of the same name (server/codec): nested messages are plain
dataclasses, ``X | None`` where the interop descriptions read a message's presence
(``response_status``, ``payload``), enums by member name. Written by hand until the protoc
plugin generates them.
"""

from __future__ import annotations

import dataclasses
import enum

import cqrs


class PayloadType(enum.Enum):
    COMPRESSABLE = 0


class GrpclbRouteType(enum.Enum):
    GRPCLB_ROUTE_TYPE_UNKNOWN = 0
    GRPCLB_ROUTE_TYPE_FALLBACK = 1
    GRPCLB_ROUTE_TYPE_BACKEND = 2


@dataclasses.dataclass(kw_only=True)
class BoolValue:
    value: bool = False


@dataclasses.dataclass(kw_only=True)
class Payload:
    type: PayloadType = PayloadType.COMPRESSABLE
    body: bytes = b""


@dataclasses.dataclass(kw_only=True)
class EchoStatus:
    code: int = 0
    message: str = ""


@dataclasses.dataclass(kw_only=True)
class ResponseParameters:
    size: int = 0
    interval_us: int = 0
    compressed: BoolValue | None = None


class EmptyCallRequest(cqrs.Request):
    """``grpc.testing.Empty`` as EmptyCall's request (UnimplementedCall takes it too)."""


class Empty(cqrs.Response):
    pass


class SimpleRequest(cqrs.Request):
    response_type: PayloadType = PayloadType.COMPRESSABLE
    response_size: int = 0
    payload: Payload | None = None
    fill_username: bool = False
    fill_oauth_scope: bool = False
    response_compressed: BoolValue | None = None
    response_status: EchoStatus | None = None
    expect_compressed: BoolValue | None = None
    fill_server_id: bool = False
    fill_grpclb_route_type: bool = False


class CacheableRequest(SimpleRequest):
    """``SimpleRequest`` as CacheableUnaryCall's request: its content is ignored."""


class SimpleResponse(cqrs.Response):
    payload: Payload | None = None
    username: str = ""
    oauth_scope: str = ""
    server_id: str = ""
    grpclb_route_type: GrpclbRouteType = GrpclbRouteType.GRPCLB_ROUTE_TYPE_UNKNOWN
    hostname: str = ""


class StreamingInputCallRequest(cqrs.Request):
    payload: Payload | None = None
    expect_compressed: BoolValue | None = None


class StreamingInputCallResponse(cqrs.Response):
    aggregated_payload_size: int = 0


class StreamingOutputCallRequest(cqrs.Request):
    """StreamingOutputCall's request; FullDuplexCall and HalfDuplexCall read subclasses of it."""

    response_type: PayloadType = PayloadType.COMPRESSABLE
    response_parameters: list[ResponseParameters] = dataclasses.field(default_factory=list)
    payload: Payload | None = None
    response_status: EchoStatus | None = None


class FullDuplexRequest(StreamingOutputCallRequest):
    pass


class HalfDuplexRequest(StreamingOutputCallRequest):
    pass


class StreamingOutputCallResponse(cqrs.Response):
    payload: Payload | None = None
