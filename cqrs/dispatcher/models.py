"""What a request dispatcher returns: the handler's response and the events it recorded."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from cqrs import recorder
from cqrs.events.event import Event

__all__ = ["RequestDispatchResult", "take_events"]


@dataclasses.dataclass
class RequestDispatchResult:
    """One response (or one streamed item) and the events recorded while producing it."""

    response: Any
    events: Sequence[Event] = dataclasses.field(default_factory=list)


def take_events(handler: Any) -> list[Event]:
    """What ``handler`` recorded, as a list (see :func:`cqrs.recorder.take_events`)."""
    return list(recorder.take_events(handler))
