"""The ``events`` / ``clear_events()`` convention every handler follows.

The mediator reads ``handler.events`` after each yield (and after ``handle`` returns) and then calls
``handler.clear_events()``. A handler may implement both itself, as the python-cqrs seed does with its own
``self._events`` list; this mixin is the working default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from cqrs.events.event import Event

__all__ = ["EventRecorder", "take_events"]


class _EventList:
    """``self._events`` of a handler that never set it: an empty list created on first use.

    Event handlers are built once per event they handle, so the recorder keeps them free of a Python
    ``__init__``; code that appends to ``self._events`` directly still finds a list of its own.
    """

    @overload
    def __get__(self, handler: None, owner: type) -> _EventList: ...
    @overload
    def __get__(self, handler: object, owner: type | None = None) -> list[Event]: ...
    def __get__(self, handler: object, owner: type | None = None) -> list[Event] | _EventList:
        if handler is None:
            return self
        events: list[Event] = []
        handler.__dict__["_events"] = events  # shadows this descriptor from now on
        return events


class EventRecorder:
    """Keeps the events a handler recorded since the mediator last collected them."""

    _events = _EventList()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A class-level ``_events = []`` would be one list shared by every instance (and unseen by
        # ``events``); each instance gets its own instead, as it always did.
        if isinstance(cls.__dict__.get("_events"), list):
            cls._events = _EventList()

    @property
    def events(self) -> Sequence[Event]:
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


def take_events(handler: Any) -> Sequence[Event]:
    """Take what ``handler`` recorded: a snapshot of ``handler.events``, then ``handler.clear_events()``.

    The snapshot is taken first because ``events`` may return the handler's live list (python-cqrs's
    own examples do), which ``clear_events()`` empties. Returns ``()`` when nothing was recorded.
    """
    events = handler.events
    if not events:
        return ()
    snapshot = tuple(events)
    clear = getattr(handler, "clear_events", None)  # python-cqrs stand-ins may have none
    if clear is not None:
        clear()
    return snapshot
