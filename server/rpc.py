"""The adapters every RPC passes through: one plain coroutine per RPC kind.

Each decodes the request, publishes the per-RPC context, runs the mediator, encodes and writes
each response, turns exceptions into statuses, and writes one log line, in one
``try/except/finally``. A streaming RPC iterates the mediator's stream inside
``contextlib.aclosing`` and awaits each ``context.write``: a client cancel or an expired deadline
cancels grpc's task for the RPC, and the handler's ``finally`` runs at once in that task, with the
RPC's context variables still set (grpc itself never ``aclose()``s an async generator it iterates).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from cqrs import RequestMediator, RequestStream, StreamingRequestMediator
from cqrs.errors import FieldViolation
from server.codec import DecodeError
from server.context import RpcContext, _enter, _leave
from server.errors import ErrorMapper, RpcError, abort_with
from server.limits import StreamLimit
from server.observability import RpcLog
from server.routing import Route

if TYPE_CHECKING:
    from server.telemetry import Telemetry

Behaviour = Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]

_OK = grpc.StatusCode.OK
# how long the end of a request stream waits for grpc to report a client cancel behind it
_CANCEL_AFTER_EOF_SECONDS = 0.005


class RpcAdapter:
    """Builds the grpc method handlers for routes, sharing the server-wide collaborators."""

    def __init__(
        self,
        *,
        streaming_mediator: StreamingRequestMediator | None,
        mediator: RequestMediator | None,
        errors: ErrorMapper,
        log: RpcLog,
        draining: asyncio.Event,
        stream_limit: StreamLimit,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._streaming_mediator = streaming_mediator
        self._mediator = mediator
        self._errors = errors
        self._log = log
        self._draining = draining
        self._stream_limit = stream_limit
        self._telemetry = telemetry

    def method_handler(self, route: Route) -> grpc.RpcMethodHandler[Any, Any]:
        # Serializers are left out on purpose: the adapter decodes and encodes itself, so a
        # bad request becomes INVALID_ARGUMENT with field details instead of grpc's opaque
        # deserialization failure, and an encoding bug becomes a logged INTERNAL.
        if route.request_type is None:
            behaviour = self._unserved(route)
        elif route.streaming:
            behaviour = self._streamed(route)
        else:
            behaviour = self._single(route)
        if route.client_streaming:
            if route.streaming:
                return grpc.stream_stream_rpc_method_handler(behaviour)
            return grpc.stream_unary_rpc_method_handler(behaviour)
        if route.streaming:
            return grpc.unary_stream_rpc_method_handler(behaviour)
        return grpc.unary_unary_rpc_method_handler(behaviour)

    def _streamed(self, route: Route) -> Behaviour:
        """Server-streaming and bidi RPCs: each item the handler yields is written as one message."""
        mediator = self._streaming_mediator
        assert mediator is not None, "routing binds streaming RPCs only with a streaming mediator"
        stream, read, encode, path = mediator.stream, _reader(route), route.encode, route.path
        errors, log, draining, limit = self._errors, self._log, self._draining, self._stream_limit
        watch = self._telemetry.route(route) if self._telemetry is not None else None
        counts_requests = route.client_streaming

        async def serve_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            rpc = RpcContext(path, context, draining)
            token = _enter(rpc)
            write: Callable[[Any], Awaitable[None]] = context.write
            probe = None
            if watch is not None:  # once per RPC: with telemetry off nothing more runs per message
                probe = watch.begin(rpc)
                write = probe.writer(write)
                if counts_requests:
                    request = probe.reader(request)
            code, sent, admitted = _OK, 0, False
            try:
                if not limit.try_enter():
                    if probe is not None:
                        probe.shed()
                    raise _too_many_streams(limit)
                admitted = True
                async with contextlib.aclosing(stream(read(request))) as items:
                    async for item in items:
                        message = encode(item)
                        sent += 1  # counted once handed to grpc, taken back if grpc refuses it
                        try:
                            await write(message)
                        except grpc.aio.BaseError as refused:
                            sent -= 1
                            if isinstance(refused, grpc.aio.AbortError):
                                raise  # a write after the handler aborted: its status stands
                            # grpc fails a pending write when the call ends under it (client
                            # cancel, deadline, dropped connection): not a bug
                            code = _cancel_code(rpc)
                            return
            except asyncio.CancelledError:
                code = _cancel_code(rpc)
                raise
            except grpc.aio.AbortError:
                code = _aborted_code(context)  # the handler ended the call itself: its status stands
                raise
            except Exception as exc:
                outcome = errors.outcome(exc, method=path)
                code = outcome.code
                await abort_with(context, outcome)
            finally:
                if admitted:
                    limit.leave()
                log.finished(rpc, code, sent)
                if probe is not None:
                    probe.end(code, sent)
                _leave(token)

        return serve_stream

    def _single(self, route: Route) -> Behaviour:
        """Unary and client-streaming RPCs: the handler's one response is the message."""
        mediator = self._mediator
        assert mediator is not None, "routing binds unary RPCs only with a unary mediator"
        send, read, encode, path = mediator.send, _reader(route), route.encode, route.path
        errors, log, draining = self._errors, self._log, self._draining
        limit = self._stream_limit if route.client_streaming else None
        watch = self._telemetry.route(route) if self._telemetry is not None else None

        async def serve_single(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            rpc = RpcContext(path, context, draining)
            token = _enter(rpc)
            probe = None
            if watch is not None:
                probe = watch.begin(rpc)
                if limit is not None:
                    request = probe.reader(request)
            code, admitted = _OK, False
            try:
                if limit is not None:
                    if not limit.try_enter():
                        if probe is not None:
                            probe.shed()
                        raise _too_many_streams(limit)
                    admitted = True
                message = encode(await send(read(request)))
                if rpc.compression_unsent:  # grpc.aio leaves a unary call's choice out of its headers
                    await context.send_initial_metadata(())
                return message
            except asyncio.CancelledError:
                code = _cancel_code(rpc)
                raise
            except grpc.aio.AbortError:
                code = _aborted_code(context)
                raise
            except Exception as exc:
                outcome = errors.outcome(exc, method=path)
                code = outcome.code
                await abort_with(context, outcome)
            finally:
                if admitted and limit is not None:
                    limit.leave()
                log.finished(rpc, code, 1 if code is _OK else 0)
                if probe is not None:
                    probe.end(code, 1 if code is _OK else 0)
                _leave(token)

        return serve_single

    def _unserved(self, route: Route) -> Behaviour:
        """An RPC left unbound on purpose: UNIMPLEMENTED, saying so."""
        log, draining, path = self._log, self._draining, route.path
        message = f"{route.key} is not served by this server"
        watch = self._telemetry.route(route) if self._telemetry is not None else None

        async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            rpc = RpcContext(path, context, draining)
            probe = watch.begin(rpc) if watch is not None else None
            try:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)
            finally:
                log.finished(rpc, grpc.StatusCode.UNIMPLEMENTED, 0)
                if probe is not None:
                    probe.end(grpc.StatusCode.UNIMPLEMENTED, 0)

        return refuse


def _reader(route: Route) -> Callable[[Any], Any]:
    """What the mediator gets from grpc's request: one decoded Request, or for a client-streaming
    or bidi RPC a :class:`cqrs.RequestStream` decoding each message as the handler reads it."""
    decode = route.decode
    if not route.client_streaming:
        return functools.partial(_decode, decode)
    request_type = route.request_type
    assert request_type is not None, "unserved routes read nothing"

    async def decoded(request_iterator: AsyncIterable[bytes]) -> AsyncIterator[Any]:
        async for request_bytes in request_iterator:
            yield _decode(decode, request_bytes)
        # grpc ends the request stream the same way for a half-close and a client cancel, and
        # cancels the RPC's task right after: this wait lets that arrive, so an abandoned stream
        # is not taken for a finished one
        await asyncio.sleep(_CANCEL_AFTER_EOF_SECONDS)

    def read(request_iterator: AsyncIterable[bytes]) -> RequestStream[Any]:
        return RequestStream(request_type, decoded(request_iterator))

    return read


def _decode(decode: Callable[[bytes], Any], request_bytes: bytes) -> Any:
    try:
        return decode(request_bytes)
    except DecodeError as exc:
        violations = [FieldViolation(exc.field_path, exc.reason)] if exc.field_path else []
        raise RpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request is not a valid {exc.message_name or 'message'}: {exc.reason}",
            reason="MALFORMED_REQUEST",
            violations=violations,
        ) from exc


def _too_many_streams(limit: StreamLimit) -> RpcError:
    return RpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"the server is serving its limit of {limit.limit} concurrent streams; retry later or elsewhere",
        reason="TOO_MANY_STREAMS",
    )


def _aborted_code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _cancel_code(rpc: RpcContext) -> grpc.StatusCode:
    remaining = rpc.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED
