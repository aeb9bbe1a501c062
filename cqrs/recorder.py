"""The ``events`` / ``clear_events()`` convention every handler follows.

The mediator reads ``handler.events`` after each yield (and after ``handle`` returns) and then calls
``handler.clear_events()``. A handler may implement both itself, as the python-cqrs seed does with its own
``self._events`` list; this mixin is the working default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cqrs.events.event import Event

__all__ = ["EventRecorder"]


class EventRecorder:
    """Keeps the events a handler recorded since the mediator last collected them."""

    _events: list[Event]

    def __init__(self) -> None:
        self._events = []

    @property
    def events(self) -> list[Event]:
        """A copy of the events recorded since the last ``clear_events()``."""
        recorded = self.__dict__.get("_events")
        return recorded.copy() if recorded else []

    def clear_events(self) -> None:
        """Forget the recorded events (the mediator has taken them)."""
        recorded = self.__dict__.get("_events")
        if recorded:
            recorded.clear()

    def add_event(self, event: Event) -> None:
        """Record ``event``; it is dispatched after the handler's next yield (or when it returns)."""
        self.__dict__.setdefault("_events", []).append(event)
