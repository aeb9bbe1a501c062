"""Handle one event and its follow-ups now, with the mediators' own dispatcher (default settings)."""

from __future__ import annotations

from typing import Any, cast

from cqrs.container import Resolver, adapt
from cqrs.events.dispatcher import EventDispatcher as _Dispatcher
from cqrs.events.event import Event
from cqrs.events.map import EventMap
from cqrs.fallback import FallbackResolver
from cqrs.middlewares.base import MiddlewareChain
from cqrs.settings import MediatorSettings

__all__ = ["EventDispatcher"]


class EventDispatcher:
    """``await dispatcher.dispatch(event)``: the event's handlers, then follow-ups level by level."""

    def __init__(
        self,
        event_map: EventMap,
        container: Resolver | Any,
        middleware_chain: MiddlewareChain | None = None,
        settings: MediatorSettings | None = None,
    ) -> None:
        self.event_map = event_map
        self.container: Resolver = FallbackResolver(adapt(container))
        self.middleware_chain = middleware_chain if middleware_chain is not None else MiddlewareChain()
        self._events = _Dispatcher(event_map, settings if settings is not None else MediatorSettings())

    async def dispatch(self, event: Event) -> None:
        async def run(evt: Any) -> None:
            await self._events.dispatch((evt,), self.container)

        await self.middleware_chain.wrap(run)(cast(Any, event))
