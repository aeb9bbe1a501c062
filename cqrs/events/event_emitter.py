"""The python-cqrs event emitter: one event to its handlers and, for a notification, to a broker.

A mediator given an emitter (or a ``message_broker``) hands every event its handlers record to
:meth:`EventEmitter.emit`; the mediator's dispatcher still owns the levels of follow-ups, the
concurrency limit and the failure policy. The broker is where a message bus (e.g. NATS JetStream) plugs in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from cqrs.container import Resolver, adapt
from cqrs.events.event import Event, NotificationEvent
from cqrs.events.map import EventMap
from cqrs.fallback import FallbackResolver
from cqrs.message_brokers.protocol import MessageBroker, message_of
from cqrs.recorder import take_events

__all__ = ["EventEmitter"]

logger = logging.getLogger("cqrs.events")


class EventEmitter:
    """Runs an event's handlers (concurrently) and sends notification events to ``message_broker``."""

    def __init__(
        self, event_map: EventMap, container: Resolver | Any, message_broker: MessageBroker | None = None
    ) -> None:
        self.event_map = event_map
        self.container: Resolver = adapt(container)
        self.message_broker = message_broker
        self._resolver = FallbackResolver(self.container)

    async def emit(self, event: Event) -> Sequence[Event]:
        """Handle ``event`` and return the follow-ups its handlers recorded.

        A handler that raises is logged (logger ``cqrs.events``) and the others still run. A
        :class:`~cqrs.NotificationEvent` is then sent as a :class:`~cqrs.message_brokers.Message`;
        one that neither a handler nor a broker takes raises ``RuntimeError`` rather than vanish.
        """
        handler_types = self.event_map.get(type(event))
        follow_ups: list[Event] = []
        if handler_types:
            results = await asyncio.gather(
                *(self._handle(h, event) for h in handler_types), return_exceptions=True
            )
            for handler_type, result in zip(handler_types, results, strict=True):
                if isinstance(result, Exception):
                    logger.error(
                        "event handler %s failed on %s",
                        getattr(handler_type, "__qualname__", handler_type),
                        type(event).__qualname__,
                        exc_info=result,
                    )
                elif isinstance(result, BaseException):
                    raise result
                else:
                    follow_ups.extend(result)
        if isinstance(event, NotificationEvent):
            if self.message_broker is not None:
                await self.message_broker.send_message(message_of(event))
            elif not handler_types:
                raise RuntimeError(
                    f"{type(event).__qualname__} {event.event_name!r} has no handler and this emitter "
                    f"has no message_broker to send it to"
                )
        return follow_ups

    async def _handle(self, handler_type: type[Any], event: Event) -> Sequence[Event]:
        handler = await self._resolver.resolve(handler_type)
        await handler.handle(event)
        return take_events(handler)
