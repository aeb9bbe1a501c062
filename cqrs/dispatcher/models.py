"""What a request dispatcher returns: the handler's response and the events it recorded."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from cqrs.events.event import Event

__all__ = ["RequestDispatchResult", "take_events"]


@dataclasses.dataclass
class RequestDispatchResult:
    """One response (or one streamed item) and the events recorded while producing it."""

    response: Any
    events: Sequence[Event] = dataclasses.field(default_factory=list)


def take_events(handler: Any) -> list[Event]:
    """A copy of ``handler.events``, then ``clear_events()`` if the handler has it."""
    events = list(handler.events or ())
    if events and hasattr(handler, "clear_events"):
        handler.clear_events()
    return events
