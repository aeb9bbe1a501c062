"""The one adapter every RPC passes through.

It decodes the request, publishes the per-RPC context, runs the mediator, encodes and writes
each response, turns exceptions into statuses, and writes one log line. Keeping all of this
in one place is what makes cancellation, deadlines and errors behave the same for every RPC.

Why ``context.write`` instead of an async-generator servicer: grpc never ``aclose()``s an
async generator it iterates, so a cancelled call would leave the handler's ``finally`` to the
garbage collector, in another task. Here the RPC's own task runs the mediator's stream loop
(``stream_into``, which awaits the adapter's ``send`` for each item and closes the handler in
``finally``); a client cancel or an expired deadline cancels that task, and the handler's
cleanup runs at once with the RPC's context variables still set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from cqrs import RequestMediator, SinkError, StreamingRequestMediator
from cqrs.errors import FieldViolation
from server.codec import DecodeError
from server.context import RpcContext, _enter, _leave
from server.errors import ErrorMapper, RpcError
from server.limits import StreamLimit
from server.observability import RpcLog
from server.routing import Route

Behaviour = Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]

_OK = grpc.StatusCode.OK


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
    ) -> None:
        self._streaming_mediator = streaming_mediator
        self._mediator = mediator
        self._errors = errors
        self._log = log
        self._draining = draining
        self._stream_limit = stream_limit

    def method_handler(self, route: Route) -> grpc.RpcMethodHandler[Any, Any]:
        # Serializers are left out on purpose: the adapter decodes and encodes itself, so a
        # bad request becomes INVALID_ARGUMENT with field details instead of grpc's opaque
        # deserialization failure, and an encoding bug becomes a logged INTERNAL.
        if route.streaming:
            return grpc.unary_stream_rpc_method_handler(self._streaming(route))
        return grpc.unary_unary_rpc_method_handler(self._unary(route))

    def _streaming(self, route: Route) -> Behaviour:
        mediator = self._streaming_mediator
        assert mediator is not None, "routing binds streaming RPCs only with a streaming mediator"
        stream_into = mediator.stream_into
        decode, encode, path = route.decode, route.encode, route.path
        errors, log, draining, limit = self._errors, self._log, self._draining, self._stream_limit

        async def serve_stream(request_bytes: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            rpc = RpcContext(path, context, draining)
            token = _enter(rpc)
            write = context.write
            sent = 0
            code = _OK

            def send(response: Any) -> Awaitable[None]:
                # A plain function handing grpc's write to the mediator to await: a coroutine here
                # would be one more frame to suspend and resume per message (~4 % of the server's
                # CPU per message, measured). A failed write reaches us as SinkError. A message
                # counts once handed to grpc and is taken back if grpc refuses it; one in flight
                # when the call is cancelled stays counted.
                nonlocal sent
                message = encode(response)
                sent += 1
                return write(message)

            admitted = limit.try_enter()
            try:
                if not admitted:
                    raise _too_many_streams(limit)
                try:
                    await stream_into(_decode(decode, request_bytes), send)
                except SinkError as failed:
                    cause = failed.__cause__
                    if failed.sink is not send or not isinstance(cause, grpc.aio.BaseError):
                        raise  # the handler's own, or the response could not be encoded: mapped below
                    sent -= 1  # grpc refused the write
                    if isinstance(cause, grpc.aio.AbortError):
                        raise cause from None  # a write after the handler aborted: its status stands
                    # grpc fails a pending write with its own errors when the call ends under it
                    # (client cancel, deadline, dropped connection): not a bug
                    code = _cancel_code(rpc)
            except asyncio.CancelledError:
                code = _cancel_code(rpc)
                raise
            except grpc.aio.AbortError:
                code = _aborted_code(context)  # the handler ended the call itself: its status stands
                raise
            except Exception as exc:
                outcome = errors.outcome(_reported(exc, send), method=path)
                code = outcome.code
                await context.abort(outcome.code, outcome.message, outcome.trailers)
            finally:
                if admitted:
                    limit.leave()
                _leave(token)
                log.finished(rpc, code, sent)

        return serve_stream

    def _unary(self, route: Route) -> Behaviour:
        mediator = self._mediator
        assert mediator is not None, "routing binds unary RPCs only with a unary mediator"
        send = mediator.send
        decode, encode, path = route.decode, route.encode, route.path
        errors, log, draining = self._errors, self._log, self._draining

        async def serve_unary(request_bytes: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            rpc = RpcContext(path, context, draining)
            token = _enter(rpc)
            code = _OK
            try:
                return encode(await send(_decode(decode, request_bytes)))
            except asyncio.CancelledError:
                code = _cancel_code(rpc)
                raise
            except grpc.aio.AbortError:
                code = _aborted_code(context)
                raise
            except Exception as exc:
                outcome = errors.outcome(exc, method=path)
                code = outcome.code
                await context.abort(outcome.code, outcome.message, outcome.trailers)
                raise  # unreachable: abort() raises; keeps the return type honest
            finally:
                _leave(token)
                log.finished(rpc, code, 1 if code is _OK else 0)

        return serve_unary


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


def _reported(exc: Exception, send: Callable[[Any], Awaitable[None]]) -> BaseException:
    """What a failure is mapped and logged as: a response that ``send`` could not encode is reported
    as what encoding raised, like an exception of the handler's (a mapped error keeps its status)."""
    if isinstance(exc, SinkError) and exc.sink is send and exc.__cause__ is not None:
        return exc.__cause__
    return exc


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
