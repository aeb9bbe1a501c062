"""Events, event handlers, the event map and the dispatcher."""

from cqrs.events.event import DomainEvent, Event, NotificationEvent
from cqrs.events.event_handler import EventHandler
from cqrs.events.map import EventMap

__all__ = ["DomainEvent", "Event", "EventHandler", "EventMap", "NotificationEvent"]
