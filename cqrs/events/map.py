"""The event map: which handler classes react to which event class (any number each)."""

from __future__ import annotations

import inspect
import typing
from collections.abc import ItemsView, Iterator
from typing import Any, cast

from cqrs.events.event import Event
from cqrs.exceptions import HandlerAlreadyBoundError, InvalidHandlerError

__all__ = ["EventMap"]


class EventMap:
    """Binds event classes to handler classes, in order; matching is by exact class.

    ``get()`` returns a tuple (empty when nothing is bound) so the dispatcher does one dict lookup per
    event and allocates nothing.
    """

    def __init__(self) -> None:
        self._handlers: dict[type[Event], tuple[type[Any], ...]] = {}
        self._fallbacks = False  # an EventHandlerFallback is bound: handlers resolve through a runner

    def bind(self, event_type: type[Event], handler_type: type[Any] | Any) -> None:
        """Add ``handler_type`` (or an :class:`~cqrs.EventHandlerFallback`) to the handlers of
        ``event_type`` (the same pair twice is an error)."""
        origin = typing.get_origin(event_type)
        if isinstance(origin, type):  # NotificationEvent[Payload]: events are matched by their class
            event_type = origin
        if not isinstance(event_type, type):
            raise TypeError(f"bind() expects an event class, got {event_type!r}")
        from cqrs.fallback import EventHandlerFallback

        handle = getattr(handler_type, "handle", None)
        if isinstance(handler_type, EventHandlerFallback):
            self._fallbacks = True
        elif not isinstance(handler_type, type) or not inspect.iscoroutinefunction(handle):
            raise InvalidHandlerError(f"{handler_type!r} must be a class with an 'async def handle(event)'")
        current = self._handlers.get(event_type, ())
        if handler_type in current:
            raise HandlerAlreadyBoundError(
                f"{getattr(handler_type, '__qualname__', handler_type)} is already bound to "
                f"{event_type.__qualname__}"
            )
        self._handlers[event_type] = (*current, cast(type[Any], handler_type))  # or a fallback pair

    def get(self, event_type: type[Event]) -> tuple[type[Any], ...]:
        """The handler classes of ``event_type`` (``()`` if none)."""
        return self._handlers.get(event_type, ())

    def items(self) -> ItemsView[type[Event], tuple[type[Any], ...]]:
        return self._handlers.items()

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._handlers

    def __iter__(self) -> Iterator[type[Event]]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)
