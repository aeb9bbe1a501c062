"""The handlers of ``grpc.testing.TestService``, per gRPC's interop test descriptions.

Server features (doc/interop-test-descriptions.md in grpc/grpc): payloads of the requested sizes,
``response_parameters`` with their ``interval_us``, Echo Status (``response_status`` ends the call
with that code and message), Echo Metadata (``x-grpc-test-echo-initial`` comes back as initial
metadata, ``x-grpc-test-echo-trailing-bin`` as trailing metadata) and CompressedResponse.

The Request and Response classes are the ones ``make proto`` generates (``*_cqrs.py`` beside
``*_pb2.py``). A request class has exactly one handler, so an RPC that takes a message another
RPC takes too reads a one-line subclass of the generated class, bound by name in ``app.py``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator

import grpc

import cqrs
from server import Status, current_rpc
from src.proto.grpc.testing.empty_cqrs import Empty
from src.proto.grpc.testing.messages_cqrs import (
    BoolValue,
    EchoStatus,
    Payload,
    ResponseParameters,
    SimpleRequest,
    SimpleResponse,
    StreamingInputCallRequest,
    StreamingInputCallResponse,
    StreamingOutputCallRequest,
    StreamingOutputCallResponse,
)

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
# "unique among different server instances, but the same across all RPCs made to one"
SERVER_ID = f"{socket.gethostname()}:{os.getpid()}"
_CODES = {code.value[0]: code for code in grpc.StatusCode}


class CacheableUnaryCall(SimpleRequest):
    """CacheableUnaryCall's request (UnaryCall takes ``SimpleRequest`` itself)."""


class FullDuplexCall(StreamingOutputCallRequest):
    """FullDuplexCall's request (StreamingOutputCall takes ``StreamingOutputCallRequest`` itself)."""


class HalfDuplexCall(StreamingOutputCallRequest):
    """HalfDuplexCall's request (StreamingOutputCall takes ``StreamingOutputCallRequest`` itself)."""


async def echo_metadata(*, send_headers: bool = False) -> None:
    """Echo Metadata: send back the two test keys the client sent, if it sent them.

    ``send_headers`` sends the response headers now even with nothing to echo (a unary call's
    compression is announced in them).
    """
    rpc = current_rpc()
    if ECHO_TRAILING in rpc.metadata:
        rpc.set_trailing_metadata((ECHO_TRAILING, rpc.metadata[ECHO_TRAILING]))
    initial = [(ECHO_INITIAL, rpc.metadata[ECHO_INITIAL])] if ECHO_INITIAL in rpc.metadata else []
    if initial or send_headers:
        await rpc.send_initial_metadata(*initial)


def echo_status(status: EchoStatus | None) -> None:
    """Echo Status: end the call with the code and message the client asked for (0 is OK)."""
    if status is not None and status.code != 0:
        code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        raise Status(code, status.message)


def compress(*flags: BoolValue | None) -> bool:
    """CompressedResponse: gzip this call's responses when the client asks for it (any flag set)."""
    if not any(flag is not None and flag.value for flag in flags):
        return False
    current_rpc().set_compression("gzip")
    return True


def payload(size: int) -> Payload:
    if size < 0:
        raise Status(grpc.StatusCode.INVALID_ARGUMENT, f"a payload size must not be negative, got {size}")
    return Payload(body=bytes(size))


async def responses(request: StreamingOutputCallRequest) -> AsyncIterator[StreamingOutputCallResponse]:
    """One response per ResponseParameters, each after its ``interval_us``; Echo Status first."""
    echo_status(request.response_status)
    for parameters in request.response_parameters:
        yield await _response(parameters)


async def _response(parameters: ResponseParameters) -> StreamingOutputCallResponse:
    if parameters.interval_us > 0:
        await asyncio.sleep(parameters.interval_us / 1_000_000)
    if parameters.compressed is not None and not parameters.compressed.value:
        current_rpc().disable_next_message_compression()
    return StreamingOutputCallResponse(payload=payload(parameters.size))


class EmptyCallHandler(cqrs.RequestHandler[Empty, Empty]):
    async def handle(self, request: Empty) -> Empty:
        await echo_metadata()
        return Empty()


class UnaryCallHandler(cqrs.RequestHandler[SimpleRequest, SimpleResponse]):
    """A payload of ``response_size`` bytes, after Echo Metadata and Echo Status."""

    async def handle(self, request: SimpleRequest) -> SimpleResponse:
        await echo_metadata(send_headers=compress(request.response_compressed))
        echo_status(request.response_status)
        rpc = current_rpc()
        return SimpleResponse(
            payload=payload(request.response_size),
            username=(rpc.principal or "") if request.fill_username else "",
            server_id=SERVER_ID if request.fill_server_id else "",
            hostname=socket.gethostname(),
        )


class CacheableUnaryCallHandler(cqrs.RequestHandler[CacheableUnaryCall, SimpleResponse]):
    """The current time in nanoseconds as the payload, with headers letting a proxy cache it."""

    async def handle(self, request: CacheableUnaryCall) -> SimpleResponse:
        await current_rpc().send_initial_metadata(("cache-control", "max-age=60, public"))
        return SimpleResponse(payload=Payload(body=str(time.time_ns()).encode()))


class StreamingOutputCallHandler(
    cqrs.StreamingRequestHandler[StreamingOutputCallRequest, StreamingOutputCallResponse]
):
    async def handle(self, request: StreamingOutputCallRequest) -> AsyncIterator[StreamingOutputCallResponse]:
        compress(*(parameters.compressed for parameters in request.response_parameters))
        await echo_metadata()
        async for response in responses(request):
            yield response


class StreamingInputCallHandler(
    cqrs.ClientStreamingRequestHandler[StreamingInputCallRequest, StreamingInputCallResponse]
):
    """The sum of the request payload sizes, once the client half-closes."""

    async def handle(self, requests: AsyncIterator[StreamingInputCallRequest]) -> StreamingInputCallResponse:
        await echo_metadata()
        total = 0
        async for request in requests:
            total += len(request.payload.body) if request.payload else 0
        return StreamingInputCallResponse(aggregated_payload_size=total)


class FullDuplexCallHandler(cqrs.BidiStreamingRequestHandler[FullDuplexCall, StreamingOutputCallResponse]):
    """Each request is answered as it arrives; OK after the client half-closes."""

    async def handle(
        self, requests: AsyncIterator[FullDuplexCall]
    ) -> AsyncIterator[StreamingOutputCallResponse]:
        await echo_metadata()
        async for request in requests:
            async for response in responses(request):
                yield response


class HalfDuplexCallHandler(cqrs.BidiStreamingRequestHandler[HalfDuplexCall, StreamingOutputCallResponse]):
    """Every request is read first; then they are answered in order."""

    async def handle(
        self, requests: AsyncIterator[HalfDuplexCall]
    ) -> AsyncIterator[StreamingOutputCallResponse]:
        await echo_metadata()
        buffered = [request async for request in requests]
        for request in buffered:
            async for response in responses(request):
                yield response
