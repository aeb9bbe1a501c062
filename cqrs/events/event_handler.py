"""Event handlers: ``async def handle(event)``, and they may record follow-up events."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Generic, TypeVar

from cqrs.events.event import Event
from cqrs.recorder import EventRecorder

__all__ = ["EventHandler"]

E = TypeVar("E", bound=Event)


class EventHandler(EventRecorder, abc.ABC, Generic[E]):
    """Reacts to one event type. A new instance is resolved for every event it handles.

    Events it records (``self.add_event(...)`` or its own ``events``/``clear_events()``) are follow-ups:
    the dispatcher handles them breadth-first after the current level, up to ``max_event_depth`` levels.
    """

    @property
    def events(self) -> Sequence[Event]:
        """The follow-ups recorded since the last ``clear_events()``, as a tuple (``()`` when none, as in
        python-cqrs)."""
        recorded = self.__dict__.get("_events")
        return tuple(recorded) if recorded else ()

    @abc.abstractmethod
    async def handle(self, event: E) -> None:
        """React to ``event``. Raising is handled by the mediator's ``event_failure_policy``."""
