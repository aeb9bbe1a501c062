"""The browser protocols: which one a request speaks, how its message is read, how answers are written.

Each responder writes one RPC's answer through ASGI ``send``: ``message`` once per response
message, ``finish`` once with the status. gRPC-Web and Connect streaming answer 200 and carry
the status in a last frame; Connect unary answers with the status as the HTTP status and an
error JSON; SSE sends one event per message and a last ``end`` event (docs/web.md).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2

from server.errors import STATUS_DETAILS_TRAILER, RpcError
from server.web import framing

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Trailers = tuple[tuple[str, str | bytes], ...]

GRPC_WEB, GRPC_WEB_TEXT, CONNECT, CONNECT_STREAM, SSE = (
    "grpc-web",
    "grpc-web-text",
    "connect",
    "connect+",
    "sse",
)

# Connect's code names and HTTP statuses (connectrpc.com/docs/protocol)
_CONNECT_HTTP = {
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def connect_code(code: grpc.StatusCode) -> str:
    """Connect's name of ``code``: ``not_found``; CANCELLED is spelt ``canceled``."""
    return "canceled" if code is grpc.StatusCode.CANCELLED else code.name.lower()


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """One RPC the HTTP port serves: the very method handler registered on the gRPC server."""

    path: str
    handler: grpc.RpcMethodHandler[Any, Any]
    request_class: type[Message]
    response_class: type[Message]
    streaming: bool

    @property
    def resumable(self) -> bool:
        """Items carry a ``sequence`` and the request an ``after_sequence``: SSE ids resume it."""
        return (
            "after_sequence" in self.request_class.DESCRIPTOR.fields_by_name
            and "sequence" in self.response_class.DESCRIPTOR.fields_by_name
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Protocol:
    """What a request speaks: ``kind`` (one of the names above) and whether its messages are JSON."""

    kind: str
    json: bool

    @property
    def framed(self) -> bool:
        return self.kind in (GRPC_WEB, GRPC_WEB_TEXT, CONNECT_STREAM)


def negotiate(method: str, content_type: str, accept: str, target: Target) -> Protocol | None:
    """The protocol of a request, or None when its method and content type match none."""
    base = content_type.split(";", 1)[0].strip().lower()
    if "text/event-stream" in accept.lower() and (method == "GET" or base in ("application/json", "")):
        return Protocol(SSE, True)
    if method != "POST":
        return None
    if base in ("application/grpc-web", "application/grpc-web+proto"):
        return Protocol(GRPC_WEB, False)
    if base in ("application/grpc-web-text", "application/grpc-web-text+proto"):
        return Protocol(GRPC_WEB_TEXT, False)
    if base in ("application/connect+json", "application/connect+proto"):
        return Protocol(CONNECT_STREAM, base.endswith("json"))
    if base in ("application/json", "application/proto") and not target.streaming:
        return Protocol(CONNECT, base.endswith("json"))
    return None


def bad_request(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.INVALID_ARGUMENT, message, reason="MALFORMED_REQUEST")


def json_to_binary(target: Target, text: bytes | str) -> bytes:
    """The request's proto3 JSON as protobuf bytes; INVALID_ARGUMENT naming the problem if it is not."""
    message = target.request_class()
    try:
        json_format.Parse(text or b"{}", message)
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        name = target.request_class.DESCRIPTOR.full_name
        raise bad_request(f"the request is not valid proto3 JSON of {name}: {exc}") from None
    return message.SerializeToString()


def read_message(protocol: Protocol, target: Target, body: bytes) -> bytes:
    """The one request message of ``body`` as protobuf bytes; RpcError when it is malformed."""
    if protocol.kind == GRPC_WEB_TEXT:
        try:
            body = base64.b64decode(body, validate=False)
        except (binascii.Error, ValueError):
            raise bad_request("the gRPC-Web text body is not base64") from None
    if protocol.framed:
        try:
            frames = framing.unframe(body)
        except framing.FramingError as exc:
            raise bad_request(f"the request body is not enveloped messages: {exc}") from None
        messages = [payload for flags, payload in frames if not flags & framing.CONNECT_END]
        if any(flags & framing.COMPRESSED for flags, _ in frames):
            raise RpcError(
                grpc.StatusCode.UNIMPLEMENTED,
                "compressed request messages are not accepted: send them uncompressed",
                reason="COMPRESSION_UNSUPPORTED",
            )
        if len(messages) != 1:
            raise bad_request(f"this RPC takes exactly one request message, got {len(messages)}")
        body = messages[0]
    return json_to_binary(target, body) if protocol.json else body


def to_json(target: Target, data: bytes) -> tuple[str, Message]:
    """A response message's proto3 JSON on one line, and the message itself."""
    message = target.response_class.FromString(data)
    return json.dumps(json_format.MessageToDict(message), separators=(",", ":")), message


def connect_error(code: grpc.StatusCode, message: str, trailers: Trailers) -> dict[str, Any]:
    """Connect's error object; the rich details of ``grpc-status-details-bin`` become its ``details``."""
    error: dict[str, Any] = {"code": connect_code(code), "message": message}
    details = []
    for key, value in trailers:
        if key == STATUS_DETAILS_TRAILER and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
            except DecodeError:
                continue
            details += [
                {"type": any_.type_url.rsplit("/", 1)[-1], "value": _b64(any_.value)}
                for any_ in status.details
            ]
    if details:
        error["details"] = details
    return error


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _plain(trailers: Iterable[tuple[str, str | bytes]]) -> list[tuple[str, str | bytes]]:
    return [(key, value) for key, value in trailers if key != STATUS_DETAILS_TRAILER]


class Responder:
    """Writes one RPC's answer; subclasses say how messages and the status look."""

    content_type = "application/octet-stream"

    def __init__(self, send: Send, target: Target, protocol: Protocol) -> None:
        self._send = send
        self.target = target
        self.protocol = protocol
        self.started = False
        self.sent = 0
        self._headers: list[tuple[bytes, bytes]] = []

    def add_headers(self, pairs: Iterable[tuple[str, str | bytes]]) -> None:
        self._headers += [(k.encode(), framing.header_value(k, v).encode()) for k, v in pairs]

    async def start(self, status: int = 200) -> None:
        if not self.started:
            self.started = True
            headers = [(b"content-type", self.content_type.encode()), *self._headers]
            await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, *, more: bool = True) -> None:
        await self.start()
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def message(self, data: bytes) -> None:
        raise NotImplementedError

    async def finish(self, code: grpc.StatusCode, message: str, trailers: Trailers) -> None:
        raise NotImplementedError


class FramedResponder(Responder):
    """gRPC-Web (binary or text) and Connect streaming: enveloped messages, then a status frame."""

    def __init__(self, send: Send, target: Target, protocol: Protocol) -> None:
        super().__init__(send, target, protocol)
        self._text = protocol.kind == GRPC_WEB_TEXT
        if protocol.kind == CONNECT_STREAM:
            self.content_type = "application/connect+json" if protocol.json else "application/connect+proto"
        else:
            self.content_type = (
                "application/grpc-web-text+proto" if self._text else "application/grpc-web+proto"
            )

    def _frame(self, frame: bytes) -> bytes:
        return base64.b64encode(frame) if self._text else frame

    async def message(self, data: bytes) -> None:
        payload = to_json(self.target, data)[0].encode() if self.protocol.json else data
        self.sent += 1
        await self.body(self._frame(framing.envelope(payload)))

    async def finish(self, code: grpc.StatusCode, message: str, trailers: Trailers) -> None:
        if self.protocol.kind == CONNECT_STREAM:
            end: dict[str, Any] = {}
            if code is not grpc.StatusCode.OK:
                end["error"] = connect_error(code, message, trailers)
            metadata: dict[str, list[str]] = {}
            for key, value in _plain(trailers):
                metadata.setdefault(key, []).append(framing.header_value(key, value))
            if metadata:
                end["metadata"] = metadata
            frame = framing.envelope(json.dumps(end).encode(), framing.CONNECT_END)
        else:
            frame = framing.grpc_web_trailers(code.value[0], message, trailers)
        await self.body(self._frame(frame), more=False)


class ConnectUnaryResponder(Responder):
    """Connect unary: the one message as the body, or an error JSON under the code's HTTP status."""

    def __init__(self, send: Send, target: Target, protocol: Protocol) -> None:
        super().__init__(send, target, protocol)
        self.content_type = "application/json" if protocol.json else "application/proto"
        self._data = b""

    async def message(self, data: bytes) -> None:
        self._data = to_json(self.target, data)[0].encode() if self.protocol.json else data
        self.sent += 1

    async def finish(self, code: grpc.StatusCode, message: str, trailers: Trailers) -> None:
        self.add_headers((f"trailer-{key}", value) for key, value in _plain(trailers))
        if code is grpc.StatusCode.OK:
            await self.start(200)
            await self.body(self._data, more=False)
            return
        self.content_type = "application/json"
        await self.start(_CONNECT_HTTP.get(code, 500))
        await self.body(json.dumps(connect_error(code, message, trailers)).encode(), more=False)


class SseResponder(Responder):
    """Server-Sent Events: one unnamed event per message, ``id`` its position or ``sequence``,
    then one ``end`` event with the status."""

    content_type = "text/event-stream"

    def __init__(self, send: Send, target: Target, protocol: Protocol) -> None:
        super().__init__(send, target, protocol)
        self._headers += [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]

    async def message(self, data: bytes) -> None:
        text, decoded = to_json(self.target, data)
        self.sent += 1
        event_id = getattr(decoded, "sequence", self.sent) if self.target.resumable else self.sent
        await self.body(framing.sse_event(text, event_id=str(event_id)))

    async def finish(self, code: grpc.StatusCode, message: str, trailers: Trailers) -> None:
        end: dict[str, str] = {"code": code.name}
        if code is not grpc.StatusCode.OK:
            end["message"] = message
        await self.body(framing.sse_event(json.dumps(end), event="end"), more=False)


def responder(send: Send, target: Target, protocol: Protocol) -> Responder:
    if protocol.kind == SSE:
        return SseResponder(send, target, protocol)
    if protocol.kind == CONNECT:
        return ConnectUnaryResponder(send, target, protocol)
    return FramedResponder(send, target, protocol)
