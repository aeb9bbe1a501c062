"""The request map: which handler class serves which request class (one each)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, ItemsView, Iterator
from typing import Any

from cqrs.exceptions import HandlerAlreadyBoundError, InvalidHandlerError
from cqrs.requests.request import Request
from cqrs.requests.request_handler import (
    BidiStreamingRequestHandler,
    ClientStreamingRequestHandler,
    RequestHandler,
    StreamingRequestHandler,
    is_streaming_handler,
    is_sync_streaming_handler,
)

__all__ = ["RequestMap"]


class RequestMap:
    """Binds each request class to exactly one handler class.

    Binding a request twice raises :class:`~cqrs.exceptions.HandlerAlreadyBoundError` naming both
    handlers. A handler whose ``handle`` contradicts its base class (a ``StreamingRequestHandler``
    that is not an async generator, a ``RequestHandler`` that is one) is rejected here, at bind time.
    The map is inspectable: ``get()``, ``items()``, ``in``, iteration over request classes, ``len()``.
    """

    def __init__(self) -> None:
        self._handlers: dict[type[Request], type[Any]] = {}
        # checks of the mediators built on this map: a handler bound later must fit them too
        self._checks: list[Callable[[type[Request], type[Any]], None]] = []
        self._fallbacks = False  # a RequestHandlerFallback is bound: mediators resolve through a runner

    def bind(self, request_type: type[Request], handler_type: type[Any] | Any) -> None:
        """Serve ``request_type`` with ``handler_type`` (a new instance per send/stream), or with a
        :class:`~cqrs.RequestHandlerFallback` pair."""
        if not isinstance(request_type, type):
            raise TypeError(f"bind() expects a request class, got {request_type!r}")
        from cqrs.fallback import RequestHandlerFallback

        if isinstance(handler_type, RequestHandlerFallback):
            _check_handler(handler_type.primary)
            _check_handler(handler_type.fallback)
            self._fallbacks = True
        else:
            _check_handler(handler_type)
        current = self._handlers.get(request_type)
        if current is not None and current is not handler_type:
            raise HandlerAlreadyBoundError(
                f"{request_type.__qualname__} is already handled by {_name(current)}; "
                f"cannot bind it to {_name(handler_type)} too (a request has exactly one handler)"
            )
        for check in self._checks:
            check(request_type, handler_type)
        self._handlers[request_type] = handler_type

    def _watch(self, check: Callable[[type[Request], type[Any]], None]) -> None:
        """Check what is bound now and what will be bound later (a mediator built on this map calls it)."""
        for request_type, handler_type in self._handlers.items():
            check(request_type, handler_type)
        self._checks.append(check)

    def get(self, request_type: type[Request]) -> type[Any] | None:
        """The handler class bound to ``request_type``, or ``None`` (never raises KeyError)."""
        return self._handlers.get(request_type)

    def items(self) -> ItemsView[type[Request], type[Any]]:
        """``(request class, handler class)`` pairs, in binding order."""
        return self._handlers.items()

    def describe(self) -> str:
        """A one-line listing of what is bound, for error messages."""
        if not self._handlers:
            return "nothing is bound"
        return ", ".join(f"{r.__qualname__} -> {_name(h)}" for r, h in self._handlers.items())

    def __contains__(self, request_type: object) -> bool:
        return request_type in self._handlers

    def __iter__(self) -> Iterator[type[Request]]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)

    def __repr__(self) -> str:
        return f"RequestMap({self.describe()})"


def _check_handler(handler_type: type[Any]) -> None:
    if not isinstance(handler_type, type) or not callable(getattr(handler_type, "handle", None)):
        raise InvalidHandlerError(f"{handler_type!r} is not a handler class with a handle() method")
    for attr in ("events", "clear_events"):
        if not hasattr(handler_type, attr):
            raise InvalidHandlerError(
                f"{handler_type.__qualname__} has no {attr!r}: subclass RequestHandler or "
                f"StreamingRequestHandler, or implement the events / clear_events() convention"
            )
    streaming = is_streaming_handler(handler_type)
    generator_bases: tuple[type, ...] = (StreamingRequestHandler, BidiStreamingRequestHandler)
    for base in generator_bases:
        if issubclass(handler_type, base) and not streaming:
            raise InvalidHandlerError(
                f"{handler_type.__qualname__}.handle must be an async generator function "
                f"(an 'async def' that uses 'yield') because it is a {base.__name__}"
            )
    coroutine_bases: tuple[tuple[type, str], ...] = (
        (RequestHandler, "StreamingRequestHandler"),
        (ClientStreamingRequestHandler, "BidiStreamingRequestHandler"),
    )
    for base, instead in coroutine_bases:
        if issubclass(handler_type, base) and streaming:
            raise InvalidHandlerError(
                f"{handler_type.__qualname__}.handle is an async generator but the class is a "
                f"{base.__name__}; subclass {instead} and use a StreamingRequestMediator"
            )
    sync_streaming = is_sync_streaming_handler(handler_type)
    if not streaming and not sync_streaming and not inspect.iscoroutinefunction(handler_type.handle):
        raise InvalidHandlerError(f"{handler_type.__qualname__}.handle must be 'async def'")


def _name(handler: Any) -> str:
    return str(getattr(handler, "__qualname__", handler))
