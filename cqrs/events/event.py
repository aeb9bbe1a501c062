"""Events: facts a handler records while it works, dispatched by the mediator after each yield.

``Event`` is the base the seed imports (``from cqrs.events.event import Event``). ``DomainEvent`` is an
immutable in-process fact; ``NotificationEvent`` is an envelope meant to leave the process, with an id and
an aware UTC timestamp filled in for you.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import field
from typing import ClassVar, Generic, TypeVar

from cqrs._model import Model

__all__ = [
    "DomainEvent",
    "ECSTEvent",
    "Event",
    "IDomainEvent",
    "IEvent",
    "INotificationEvent",
    "NotificationEvent",
]

PayloadT = TypeVar("PayloadT")


class Event(Model, _abstract=True):
    """Base of all events. Subclasses are keyword-only dataclasses."""


class DomainEvent(Event):
    """An in-process fact. Subclasses are frozen dataclasses (hashable, safe to share between handlers)."""

    __cqrs_frozen__: ClassVar[bool] = True


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class NotificationEvent(Event, Generic[PayloadT]):
    """An event meant for other services: ``event_name`` plus a typed ``payload``.

    A mediator built with a message broker sends it there, to ``topic`` (``None``: the broker's default).
    """

    event_name: str
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    event_timestamp: datetime.datetime = field(default_factory=_utc_now)
    topic: str | None = None
    payload: PayloadT | None = None


# python-cqrs names: its interfaces (and 4.x's ECST event) are these classes here
IEvent = Event
IDomainEvent = DomainEvent
INotificationEvent = NotificationEvent
ECSTEvent = NotificationEvent  # 4.x: an event-carried state transfer notification
