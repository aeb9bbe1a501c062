"""Events, event handlers, the event map and the dispatcher; python-cqrs's emitter and mediator."""

from cqrs.events.event import (
    DomainEvent,
    Event,
    IDomainEvent,
    IEvent,
    INotificationEvent,
    NotificationEvent,
)
from cqrs.events.event_emitter import EventEmitter
from cqrs.events.event_handler import EventHandler
from cqrs.events.map import EventMap
from cqrs.events.mediator import EventMediator
from cqrs.fallback import EventHandlerFallback

__all__ = [
    "DomainEvent",
    "Event",
    "EventEmitter",
    "EventHandler",
    "EventHandlerFallback",
    "EventMap",
    "EventMediator",
    "IDomainEvent",
    "IEvent",
    "INotificationEvent",
    "NotificationEvent",
]
