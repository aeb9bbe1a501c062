"""Request handlers: unary (``async def handle``) and streaming (``handle`` is an async generator).

Both follow the ``events`` / ``clear_events()`` convention of :class:`cqrs.recorder.EventRecorder`.
:func:`handler_types` tells which Request/Response classes a handler class was declared for; the gRPC
server uses it to check messages against classes at start-up.
"""

from __future__ import annotations

import abc
import inspect
import typing
from collections.abc import AsyncIterator, Iterator
from typing import Any, Generic, TypeVar

from cqrs.recorder import EventRecorder
from cqrs.requests.request import Request, Response

__all__ = [
    "BidiStreamingRequestHandler",
    "ClientStreamingRequestHandler",
    "RequestHandler",
    "StreamingRequestHandler",
    "SyncStreamingRequestHandler",
    "handler_types",
    "is_streaming_handler",
    "is_sync_streaming_handler",
    "takes_request_stream",
]

ReqT = TypeVar("ReqT", bound=Request)
ResT = TypeVar("ResT")


class RequestHandler(EventRecorder, abc.ABC, Generic[ReqT, ResT]):
    """Handles one request class and returns one response (or ``None`` for a command).

    Events recorded during ``handle`` are dispatched after it returns, before ``send`` returns.
    """

    @abc.abstractmethod
    async def handle(self, request: ReqT) -> ResT:
        """Handle ``request``."""


class StreamingRequestHandler(EventRecorder, abc.ABC, Generic[ReqT, ResT]):
    """Handles one request class by yielding responses; each yield is one streamed message.

    ``handle`` must be an async generator function (checked when the handler is bound). Events recorded
    before a yield are dispatched after it and finished before the handler is resumed.
    """

    @abc.abstractmethod
    def handle(self, request: ReqT) -> AsyncIterator[ResT]:
        """Yield the responses for ``request``."""


class ClientStreamingRequestHandler(EventRecorder, abc.ABC, Generic[ReqT, ResT]):
    """Handles a stream of requests and returns one response (a client-streaming RPC).

    Run by ``RequestMediator.send(RequestStream(ReqT, requests))``. Events recorded while reading are
    dispatched before the next request is handed over, and the rest after ``handle`` returns.
    """

    @abc.abstractmethod
    async def handle(self, requests: AsyncIterator[ReqT]) -> ResT:
        """Read ``requests`` (``async for``) and return the response."""


class BidiStreamingRequestHandler(EventRecorder, abc.ABC, Generic[ReqT, ResT]):
    """Handles a stream of requests by yielding responses as it goes (a bidirectional RPC).

    Run by ``StreamingRequestMediator.stream(RequestStream(ReqT, requests))``; ``handle`` is an async
    generator. Events are dispatched after each yield (per ``event_timing``) and before the next
    request is handed over.
    """

    @abc.abstractmethod
    def handle(self, requests: AsyncIterator[ReqT]) -> AsyncIterator[ResT]:
        """Read ``requests`` and yield responses, in any interleaving."""


def takes_request_stream(handler_cls: type) -> bool:
    """True for handlers whose ``handle`` reads a stream of requests (client-streaming or bidi)."""
    return isinstance(handler_cls, type) and issubclass(
        handler_cls, ClientStreamingRequestHandler | BidiStreamingRequestHandler
    )


class SyncStreamingRequestHandler(EventRecorder, abc.ABC, Generic[ReqT, ResT]):
    """python-cqrs 4.x: ``handle`` is a plain generator. Only
    :class:`cqrs.dispatcher.StreamingRequestDispatcher` runs it; the mediators refuse it when it is bound
    (they stream async generators)."""

    @abc.abstractmethod
    def handle(self, request: ReqT) -> Iterator[ResT]:
        """Yield the responses for ``request``."""


def is_sync_streaming_handler(handler_cls: type) -> bool:
    """True when ``handler_cls.handle`` is a plain generator function."""
    return inspect.isgeneratorfunction(getattr(handler_cls, "handle", None))


def is_streaming_handler(handler_cls: type) -> bool:
    """True when ``handler_cls.handle`` is an async generator function."""
    return inspect.isasyncgenfunction(getattr(handler_cls, "handle", None))


def handler_types(handler_cls: type) -> tuple[type[Request], type[Response] | None]:
    """The ``(Request, Response)`` classes ``handler_cls`` was parametrised with.

    Walks the MRO's ``__orig_bases__`` for ``RequestHandler[...]`` / ``StreamingRequestHandler[...]``,
    substituting type variables bound by intermediate generic classes. The response is ``None`` for
    ``RequestHandler[Cmd, None]`` or when it is not a Response class (e.g. left unparametrised).
    Raises ``TypeError`` when no request class can be found.
    """
    if not isinstance(handler_cls, type) and isinstance(getattr(handler_cls, "primary", None), type):
        handler_cls = handler_cls.primary  # a RequestHandlerFallback: both classes declare the same types
    args = _resolve_args(handler_cls, {})
    if args is None or not (isinstance(args[0], type) and issubclass(args[0], Request)):
        raise TypeError(
            f"{handler_cls.__qualname__} does not declare its request class: subclass "
            f"RequestHandler[YourRequest, YourResponse] or StreamingRequestHandler[YourRequest, YourResponse]"
        )
    response = args[1]
    if isinstance(response, type) and issubclass(response, Response):
        return args[0], response
    return args[0], None


_BASES = (
    RequestHandler,
    StreamingRequestHandler,
    ClientStreamingRequestHandler,
    BidiStreamingRequestHandler,
    SyncStreamingRequestHandler,
)


def _resolve_args(cls: type, bound: dict[Any, Any]) -> tuple[Any, Any] | None:
    for base in getattr(cls, "__orig_bases__", ()):
        origin = typing.get_origin(base)
        if origin is None:
            continue
        args = tuple(bound.get(a, a) for a in typing.get_args(base))
        if origin in _BASES:
            return args[0], args[1]
        params = getattr(origin, "__parameters__", ())
        found = _resolve_args(origin, dict(zip(params, args, strict=False)))
        if found is not None:
            return found
    for base in cls.__bases__:
        if base is not object and base not in _BASES:
            found = _resolve_args(base, bound)
            if found is not None:
                return found
    return None
