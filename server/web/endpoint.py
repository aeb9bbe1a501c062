"""One RPC over HTTP, end to end: negotiate, authenticate, read, run the shared adapter, answer.

The RPC runs the method handler that the gRPC server registered (``server/rpc.py``'s adapter, or
health's), in a task of its own so that three things can end it early, each closing the handler
(its ``finally`` runs): the client going away (the HTTP ``disconnect``), the deadline
(``grpc-timeout`` / ``connect-timeout-ms``) and the end of a drain's grace period.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import MutableMapping
from typing import Any

import grpc
import grpc.aio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from server.auth import TokenAuth
from server.context import _principal
from server.errors import ErrorMapper, RpcError
from server.web import protocols
from server.web.call import HttpCall, parse_timeout, request_metadata
from server.web.protocols import Protocol, Responder, Target

# room for envelopes, base64 and JSON around a message of the largest size accepted
_BODY_SLACK = 1024


class Ending(enum.Enum):
    """Why an RPC's task was ended from outside."""

    CLIENT_GONE = "client gone"
    DEADLINE = "deadline"
    DRAIN = "drain"


class Flight:
    """An RPC in progress: its task, and why it was ended if it was."""

    __slots__ = ("ending", "task")

    def __init__(self, task: asyncio.Task[None]) -> None:
        self.task = task
        self.ending: Ending | None = None

    def end(self, why: Ending) -> None:
        if not self.task.done():
            self.ending = self.ending or why
            self.task.cancel()


class Shared:
    """What every endpoint of one HTTP port shares: errors, tokens, limits, drain, RPCs in flight."""

    def __init__(
        self,
        *,
        errors: ErrorMapper,
        auth: TokenAuth | None,
        draining: asyncio.Event,
        max_receive_bytes: int,
        max_send_bytes: int,
    ) -> None:
        self.errors = errors
        self.auth = auth
        self.draining = draining
        self.max_receive_bytes = max_receive_bytes
        self.max_send_bytes = max_send_bytes
        self.flights: set[Flight] = set()
        self.idle = asyncio.Event()
        self.idle.set()


class RpcEndpoint:
    """The ASGI app of one RPC path."""

    def __init__(self, target: Target, shared: Shared, *, client_streaming: bool = False) -> None:
        self.target = target
        self.shared = shared
        self.client_streaming = client_streaming

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        headers = request.headers
        protocol = protocols.negotiate(
            request.method, headers.get("content-type", ""), headers.get("accept", ""), self.target
        )
        if protocol is None:
            kinds = "application/grpc-web(+proto), application/grpc-web-text, application/connect+json|+proto"
            if not self.target.streaming:
                kinds += ", application/json|proto"
            answer = PlainTextResponse(
                f"{self.target.path} takes POST with a Content-Type of {kinds}, "
                "or Accept: text/event-stream (GET ?message=<JSON> or POST a JSON body)\n",
                status_code=415,
            )
            await answer(scope, receive, send)
            return
        out = protocols.responder(send, self.target, protocol)
        try:
            call, data = await self._prepare(request, protocol, out)
        except ClientDisconnect:  # gone before its request had arrived: nobody to answer
            return
        except RpcError as exc:
            outcome = self.shared.errors.outcome(exc, method=self.target.path)
            await out.finish(outcome.code, outcome.message, outcome.trailers)
            return
        await self._run(call, data, out, receive)

    async def _prepare(self, request: Request, protocol: Protocol, out: Responder) -> tuple[HttpCall, bytes]:
        """The call and its request bytes; RpcError for anything that keeps the RPC from running."""
        shared, target = self.shared, self.target
        if self.client_streaming:
            raise RpcError(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{target.path.lstrip('/')} reads a stream of requests: call it on the gRPC port",
                reason="CLIENT_STREAMING_OVER_HTTP",
            )
        if shared.draining.is_set():
            raise RpcError(
                grpc.StatusCode.UNAVAILABLE,
                "the server is shutting down; retry on another",
                reason="SERVER_DRAINING",
            )
        try:
            timeout = parse_timeout(request.headers)
        except ValueError as exc:
            raise protocols.bad_request(str(exc)) from None
        metadata = request_metadata(request.headers.items())
        if shared.auth is not None and shared.auth.guards(target.path):
            token = shared.auth.check(target.path, metadata)
            if isinstance(token, RpcError):
                raise token
            _principal.set(token.name)  # copied into the RPC's task, as the interceptor does on gRPC
        data = await self._request_bytes(request, protocol)
        client = request.client
        host = client.host if client else "unknown"
        family = "ipv6" if ":" in host else "ipv4"
        call = HttpCall(
            metadata=metadata,
            peer=f"{family}:{f'[{host}]' if family == 'ipv6' else host}:{client.port if client else 0}",
            timeout=timeout,
            write=out.message,
            send_headers=lambda pairs: self._headers(out, pairs),
            serializer=target.handler.response_serializer,
            max_send_bytes=shared.max_send_bytes,
        )
        return call, data

    async def _request_bytes(self, request: Request, protocol: Protocol) -> bytes:
        limit = self.shared.max_receive_bytes
        if protocol.kind == protocols.SSE and request.method == "GET":
            body = request.query_params.get("message", "{}").encode()
        else:
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit * 2 + _BODY_SLACK:
                    raise _too_large(limit)
                chunks.append(chunk)
            body = b"".join(chunks)
        data = protocols.read_message(protocol, self.target, body)
        if len(data) > limit:
            raise _too_large(limit)
        if protocol.kind == protocols.SSE and self.target.resumable:
            data = _resume(self.target, data, request)
        return data

    @staticmethod
    async def _headers(out: Responder, pairs: tuple[tuple[str, str | bytes], ...]) -> None:
        out.add_headers(pairs)
        if out.protocol.kind != protocols.CONNECT:  # a stream's headers go out now, before any message
            await out.start()

    async def _run(self, call: HttpCall, data: bytes, out: Responder, receive: Receive) -> None:
        shared = self.shared
        flight = Flight(asyncio.create_task(self._invoke(call, data, out)))
        shared.flights.add(flight)
        shared.idle.clear()
        gone = asyncio.create_task(_disconnected(receive))
        try:
            remaining = None if call.deadline is None else max(0.0, call.deadline - time.monotonic())
            done, _ = await asyncio.wait(
                {flight.task, gone}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if flight.task not in done:
                flight.end(Ending.CLIENT_GONE if gone in done else Ending.DEADLINE)
            await asyncio.wait({flight.task})
        except asyncio.CancelledError:  # the HTTP server itself gave up on this request
            flight.end(Ending.CLIENT_GONE)
            await asyncio.wait({flight.task})
            raise
        finally:
            gone.cancel()
            shared.flights.discard(flight)
            if not shared.flights:
                shared.idle.set()
        code, message, trailers = self._status(flight, call)
        if code is not None:
            await out.finish(code, message, trailers)

    def _status(
        self, flight: Flight, call: HttpCall
    ) -> tuple[grpc.StatusCode | None, str, protocols.Trailers]:
        """The status to send, or None when nobody is left to hear it."""
        task, trailers = flight.task, tuple(call.trailing_metadata())
        if task.cancelled():
            if flight.ending is Ending.DEADLINE:
                return grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline of the call passed", trailers
            if flight.ending is Ending.DRAIN:
                return grpc.StatusCode.UNAVAILABLE, "the server is shutting down; reconnect", trailers
            return None, "", ()
        exc = task.exception()
        if exc is None:
            return grpc.StatusCode.OK, "", trailers
        if isinstance(exc, grpc.aio.AbortError):
            return call.status_code, call.status_details, trailers
        outcome = self.shared.errors.internal(exc, method=self.target.path)
        return outcome.code, outcome.message, outcome.trailers

    async def _invoke(self, call: HttpCall, data: bytes, out: Responder) -> None:
        handler = self.target.handler
        request: Any = handler.request_deserializer(data) if handler.request_deserializer else data
        # grpc.aio behaviours: coroutines taking the request and a ServicerContext (the stubs type sync ones)
        unary: Any = handler.unary_unary
        streamed: Any = handler.unary_stream
        if unary is not None:
            await call.write(await unary(request, call))  # serialized and size-checked as a stream's items
        elif streamed is not None:
            await streamed(request, call)
        else:
            raise AssertionError("only RPCs with one request are served over HTTP")


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (the request body must have been read already)."""
    while True:
        message: MutableMapping[str, Any] = await receive()
        if message["type"] == "http.disconnect":
            return


def _too_large(limit: int) -> RpcError:
    return RpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"the request message is larger than the limit of {limit} bytes",
        reason="MESSAGE_TOO_LARGE",
    )


def _resume(target: Target, data: bytes, request: Request) -> bytes:
    """``after_sequence`` from ``Last-Event-ID`` (or ``?lastEventId=``): an EventSource resumes its stream."""
    last = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    if not last:
        return data
    if not last.isdigit() or len(last) > 18:
        raise protocols.bad_request(f"Last-Event-ID must be an event's sequence number, got {last[:40]!r}")
    message = target.request_class.FromString(data)
    message.after_sequence = max(message.after_sequence, int(last))  # type: ignore[attr-defined]
    return message.SerializeToString()
