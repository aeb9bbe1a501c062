"""python-cqrs's ``EventProcessor``: hands a batch of events, and their follow-ups, to an emitter.

It is the mediators' own dispatcher configured with the emitter, not a second implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from cqrs.container import Resolver
from cqrs.events.dispatcher import EventDispatcher
from cqrs.events.event import Event
from cqrs.events.event_emitter import EventEmitter
from cqrs.events.map import EventMap
from cqrs.settings import MediatorSettings

__all__ = ["EventProcessor"]


class EventProcessor:
    """``await processor.emit_events(events)`` emits every event and follow-up; no emitter, no-op."""

    def __init__(
        self,
        event_map: EventMap,
        event_emitter: EventEmitter | None = None,
        max_concurrent_event_handlers: int = 1,
        concurrent_event_handle_enable: bool = True,
    ) -> None:
        self.event_map = event_map
        self.event_emitter = event_emitter
        settings = MediatorSettings(
            max_concurrent_event_handlers=max_concurrent_event_handlers,
            concurrent_event_handle_enable=concurrent_event_handle_enable,
        )
        self._dispatcher = EventDispatcher(event_map, settings, emitter=event_emitter)

    async def emit_events(self, events: Sequence[Event]) -> None:
        """Emit ``events``, then their follow-ups level by level; handler failures are logged."""
        if self.event_emitter is not None and events:
            # the emitter resolves handlers itself; the dispatcher only needs a resolver for its own map
            resolver = getattr(self.event_emitter, "container", None)
            await self._dispatcher.dispatch(events, cast(Resolver, resolver))
