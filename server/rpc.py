"""The one adapter every RPC passes through.

It decodes the request, publishes the per-RPC context, runs the mediator, encodes and writes
each response, turns exceptions into statuses, and writes one log line. Keeping all of this
in one place is what makes cancellation, deadlines and errors behave the same for every RPC.

Why ``context.write`` instead of an async-generator servicer: grpc never ``aclose()``s an async
generator it iterates, so a cancelled call would leave the handler's ``finally`` to the garbage
collector, in another task. Here grpc's task for the RPC awaits the mediator's stream loop
(``stream_into``, which awaits each write and closes the handler in ``finally``; directly on Python
3.12+, through one small coroutine before), with a per-call object as the guard the loop enters
around the stream: a client cancel or an expired deadline cancels that task, and the handler's
cleanup runs at once with the RPC's context variables still set.
"""

from __future__ import annotations

import asyncio
import inspect
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

        def serve_stream(
            request_bytes: bytes, context: grpc.aio.ServicerContext[Any, Any]
        ) -> Awaitable[object]:
            call = _StreamCall(RpcContext(path, context, draining), encode, errors, log, limit)
            try:
                call.admit()
                request = _decode(decode, request_bytes)
            except Exception as refused:
                return call.refuse(refused)
            except BaseException:
                call.finish(_OK)  # not ours to map (an interrupt): still release what the call holds
                raise
            # grpc's write starts the send in its first step and then only waits for it to
            # complete: an item's events run during that wait
            return stream_into(request, call.send, guard=call, events_during_sink=True)

        return _awaited_by_grpc(serve_stream)

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


def _too_many_streams(limit: StreamLimit) -> RpcError:
    return RpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"the server is serving its limit of {limit.limit} concurrent streams; retry later or elsewhere",
        reason="TOO_MANY_STREAMS",
    )


class _StreamCall:
    """One streaming RPC around the mediator's loop: the sink its items are written through, and the
    guard ``stream_into`` enters around the stream, which turns how it ended into a status and a log line.

    Why a guard and not a coroutine of ours awaiting ``stream_into`` in a ``try``: every message's
    write suspends and resumes each coroutine between grpc's task and grpc's write, so each level
    there is paid per message. With the guard, grpc awaits the mediator's loop directly, and that
    loop's frame is the only one of ours on the per-message path (docs/design.md).
    """

    __slots__ = (
        "_admitted",
        "_context",
        "_encode",
        "_errors",
        "_limit",
        "_log",
        "_rpc",
        "_token",
        "_write",
        "sent",
    )

    def __init__(
        self,
        rpc: RpcContext,
        encode: Callable[[Any], bytes],
        errors: ErrorMapper,
        log: RpcLog,
        limit: StreamLimit,
    ) -> None:
        self._rpc = rpc
        self._context = rpc.grpc_context
        self._token = _enter(rpc)
        self._encode = encode
        self._write = self._context.write
        self._errors = errors
        self._log = log
        self._limit = limit
        self._admitted = False
        self.sent = 0

    def admit(self) -> None:
        if not self._limit.try_enter():
            raise _too_many_streams(self._limit)
        self._admitted = True

    def send(self, response: Any) -> Awaitable[None]:
        # A plain function handing grpc's write to the mediator to await: a coroutine here would be
        # one more frame to suspend and resume per message. A failed write reaches the guard as a
        # SinkError. A message counts once handed to grpc and is taken back if grpc refuses it; one
        # in flight when the call is cancelled stays counted.
        message = self._encode(response)
        self.sent += 1
        return self._write(message)

    def refuse(self, reason: Exception) -> Awaitable[bool]:
        """End a stream refused before it started (over the limit, a request that does not decode)
        with the status and the log line of a stream that failed."""
        return self._end(reason)

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        return await self._end(exc)

    async def _end(self, exc: BaseException | None) -> bool:
        """Settle the call by how the stream ended (``exc``); True when ``exc`` is taken care of."""
        code = _OK
        try:
            if exc is None:
                return False
            cause = exc.__cause__
            if isinstance(exc, SinkError) and getattr(exc.sink, "__self__", None) is self:  # our send
                if isinstance(cause, grpc.aio.BaseError):
                    self.sent -= 1  # grpc refused the write
                    if isinstance(cause, grpc.aio.AbortError):
                        code = _aborted_code(self._context)  # a write after the handler aborted
                        raise cause from None  # its status stands
                    # grpc fails a pending write with its own errors when the call ends under it
                    # (client cancel, deadline, dropped connection): not a bug
                    code = _cancel_code(self._rpc)
                    return True
                exc = cause or exc  # the response could not be encoded: reported as what encoding raised
            if isinstance(exc, asyncio.CancelledError):
                code = _cancel_code(self._rpc)
            elif isinstance(exc, grpc.aio.AbortError):
                code = _aborted_code(self._context)  # the handler ended the call itself: its status stands
            elif isinstance(exc, Exception):
                outcome = self._errors.outcome(exc, method=self._rpc.method)
                code = outcome.code
                await self._context.abort(outcome.code, outcome.message, outcome.trailers)
                return True  # not reached (abort raises); had it returned, its status is out already
            return False
        finally:
            self.finish(code)

    def finish(self, code: grpc.StatusCode) -> None:
        """Release what the call holds and write its log line: once, however it ended."""
        if self._admitted:
            self._limit.leave()
        _leave(self._token)
        self._log.finished(self._rpc, code, self.sent)


def _awaited_by_grpc(behaviour: Callable[..., Awaitable[object]]) -> Behaviour:
    """Let grpc await what ``behaviour`` returns, with no coroutine of ours in between.

    grpc awaits the result of a handler it takes for a coroutine function; Python 3.12 can mark a
    plain function as one. Before 3.12 a coroutine awaits it, one frame more per message.
    """
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        marked: Behaviour = mark(behaviour)
        return marked

    async def awaiting(request_bytes: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await behaviour(request_bytes, context)

    return awaiting


def _aborted_code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _cancel_code(rpc: RpcContext) -> grpc.StatusCode:
    remaining = rpc.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED
