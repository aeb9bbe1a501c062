"""python-cqrs's handler fallbacks: bind ``RequestHandlerFallback(Primary, Fallback)`` (or
``EventHandlerFallback``) where a handler class goes, and the fallback runs when the primary fails.

Both classes of a pair are checked when the pair is made (same base, same request/response or event
types). At run time a resolver wrapped by :class:`FallbackResolver` turns a pair into a :class:`_Runner`
that looks like a handler to the mediator: it resolves the primary, and on a failure that
``failure_exceptions`` (empty: any) or the circuit breaker accepts, resolves and runs the fallback. A
streaming primary falls back only before its first item (afterwards items would be sent twice).
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, TypeVar

from cqrs.container import Resolver
from cqrs.events.event import Event
from cqrs.events.event_handler import EventHandler
from cqrs.requests.request_handler import StreamingRequestHandler, handler_types

__all__ = ["CircuitBreaker", "EventHandlerFallback", "FallbackResolver", "RequestHandlerFallback"]

logger = logging.getLogger("cqrs")

T = TypeVar("T")


class CircuitBreaker(Protocol):
    """python-cqrs's ``ICircuitBreaker``: runs the primary, tells its own "open" errors apart."""

    async def call(self, identifier: Any, func: Any, *args: Any) -> Any: ...

    def is_circuit_breaker_error(self, exc: BaseException) -> bool: ...


def _check_classes(primary: Any, fallback: Any, kind: str) -> None:
    if not isinstance(primary, type) or not isinstance(fallback, type):
        raise TypeError(
            f"{kind} primary and fallback must be handler classes, got {primary!r} and {fallback!r}"
        )


@dataclasses.dataclass(frozen=True)
class RequestHandlerFallback:
    """``primary`` serves the request; ``fallback`` (same base, same request and response) when it fails."""

    primary: type[Any]
    fallback: type[Any]
    failure_exceptions: tuple[type[Exception], ...] = ()
    circuit_breaker: CircuitBreaker | None = None

    def __post_init__(self) -> None:
        _check_classes(self.primary, self.fallback, "RequestHandlerFallback")
        if issubclass(self.primary, StreamingRequestHandler) != issubclass(
            self.fallback, StreamingRequestHandler
        ):
            raise TypeError(
                "RequestHandlerFallback primary and fallback must be the same handler base type: "
                "both RequestHandler or both StreamingRequestHandler"
            )
        primary, fallback = _declared(self.primary), _declared(self.fallback)
        if primary is not None and fallback is not None:
            if primary[0] is not fallback[0]:
                raise TypeError(
                    f"RequestHandlerFallback primary and fallback must handle the same request type: "
                    f"{primary[0].__qualname__} vs {fallback[0].__qualname__}"
                )
            if primary[1] is not fallback[1]:
                raise TypeError(
                    "RequestHandlerFallback primary and fallback must return the same response type"
                )

    @property
    def streaming(self) -> bool:
        return issubclass(self.primary, StreamingRequestHandler)


@dataclasses.dataclass(frozen=True)
class EventHandlerFallback:
    """``primary`` handles the event; ``fallback`` (an EventHandler of the same event) when it fails."""

    primary: type[Any]
    fallback: type[Any]
    failure_exceptions: tuple[type[Exception], ...] = ()
    circuit_breaker: CircuitBreaker | None = None

    def __post_init__(self) -> None:
        _check_classes(self.primary, self.fallback, "EventHandlerFallback")
        for role, cls in (("primary", self.primary), ("fallback", self.fallback)):
            if not issubclass(cls, EventHandler):
                raise TypeError(
                    f"EventHandlerFallback {role} {cls.__qualname__} must be a subclass of EventHandler"
                )
        if _event_type(self.primary) is not _event_type(self.fallback):
            raise TypeError("EventHandlerFallback primary and fallback must handle the same event type")


Fallback = RequestHandlerFallback | EventHandlerFallback


def _declared(cls: type) -> tuple[Any, Any] | None:
    try:
        return handler_types(cls)
    except TypeError:
        return None


def _event_type(cls: type) -> Any:
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            if typing.get_origin(base) is EventHandler:
                return typing.get_args(base)[0]
    return None


class _Runner:
    """One send's (or one event's) primary-or-fallback handler."""

    def __init__(self, spec: Fallback, resolver: Resolver) -> None:
        self._spec = spec
        self._resolver = resolver
        self._current: Any = None

    @property
    def events(self) -> Sequence[Event]:
        return tuple(self._current.events or ()) if self._current is not None else ()

    def clear_events(self) -> None:
        clear = getattr(self._current, "clear_events", None)
        if clear is not None:
            clear()

    def _falls_back(self, exc: Exception) -> bool:
        spec, breaker = self._spec, self._spec.circuit_breaker
        if breaker is not None and breaker.is_circuit_breaker_error(exc):
            return True
        return not spec.failure_exceptions or isinstance(exc, spec.failure_exceptions)

    async def _switch(self, exc: Exception) -> Any:
        logger.warning(
            "handler %s failed (%r); switching to fallback %s",
            self._spec.primary.__qualname__,
            exc,
            self._spec.fallback.__qualname__,
        )
        self._current = await self._resolver.resolve(self._spec.fallback)
        return self._current

    async def handle(self, message: Any) -> Any:
        self._current = primary = await self._resolver.resolve(self._spec.primary)
        try:
            if self._spec.circuit_breaker is not None:
                return await self._spec.circuit_breaker.call(self._spec.primary, primary.handle, message)
            return await primary.handle(message)
        except Exception as exc:
            if not self._falls_back(exc):
                raise
            fallback = await self._switch(exc)
            return await fallback.handle(message)


class _StreamRunner(_Runner):
    async def handle(self, message: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        self._current = primary = await self._resolver.resolve(self._spec.primary)
        started = False
        try:
            async for item in primary.handle(message):
                started = True
                yield item
            return
        except Exception as exc:
            if started or not self._falls_back(exc):
                raise
            fallback = await self._switch(exc)
        async for item in fallback.handle(message):
            yield item


class FallbackResolver:
    """Resolves fallback pairs to runners and everything else with ``inner``."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Resolver) -> None:
        self._inner = inner

    async def resolve(self, type_: type[T]) -> T:
        spec: Any = type_
        if isinstance(spec, RequestHandlerFallback) and spec.streaming:
            return typing.cast(T, _StreamRunner(spec, self._inner))
        if isinstance(spec, RequestHandlerFallback | EventHandlerFallback):
            return typing.cast(T, _Runner(spec, self._inner))
        return await self._inner.resolve(type_)
