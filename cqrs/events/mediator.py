"""python-cqrs's ``EventMediator``: ``await mediator.send(event)`` runs the event's handlers and their
follow-ups now, through the same dispatcher (and settings) a request mediator uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from cqrs.container import Container, Resolver, adapt
from cqrs.events.dispatcher import EventDispatcher
from cqrs.events.event import Event
from cqrs.events.map import EventMap
from cqrs.middleware import Middleware, build_chain
from cqrs.settings import MediatorSettings

if TYPE_CHECKING:
    from cqrs.middlewares.base import MiddlewareChain

__all__ = ["EventMediator"]


class EventMediator:
    """Sends events (say, consumed from a broker) to their handlers; middleware wraps each ``send``."""

    def __init__(
        self,
        event_map: EventMap,
        container: Resolver | Any = None,
        middleware_chain: MiddlewareChain | None = None,
        *,
        middlewares: Sequence[Middleware] | None = (),
        settings: MediatorSettings | None = None,
    ) -> None:
        self.event_map = event_map
        self.container: Resolver = adapt(container) if container is not None else Container()
        chain = middleware_chain.middlewares if middleware_chain is not None else ()
        self.middlewares: tuple[Middleware, ...] = (*(middlewares or ()), *chain)
        self.settings = settings if settings is not None else MediatorSettings()
        self._events = EventDispatcher(event_map, self.settings)

    async def send(self, event: Event) -> None:
        """Handle ``event`` and its follow-ups under the mediator's settings."""
        if not self.middlewares:
            return await self._events.dispatch((event,), self.container)

        async def terminal(evt: Any) -> None:
            await self._events.dispatch((evt,), self.container)

        await build_chain(self.middlewares, terminal)(cast(Any, event))
