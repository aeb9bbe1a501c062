"""python-cqrs 5.x model names: ``DC*`` are our (dataclass) classes, ``Pydantic*`` always pydantic-built.

A subclass of a ``Pydantic*`` base is a pydantic dataclass even without ``pydantic.Field`` (values are
validated and coerced, as python-cqrs's pydantic models are); it needs the ``pydantic`` package.
"""

from __future__ import annotations

from typing import Any, ClassVar

from cqrs.events.event import DomainEvent, Event, NotificationEvent
from cqrs.requests.request import Request, Response

__all__ = [
    "DCDomainEvent",
    "DCEvent",
    "DCNotificationEvent",
    "DCRequest",
    "DCResponse",
    "PydanticDomainEvent",
    "PydanticRequest",
    "PydanticResponse",
]

DCRequest = Request
DCResponse = Response
DCEvent = Event
DCDomainEvent = DomainEvent
DCNotificationEvent = NotificationEvent


class PydanticRequest(Request, _abstract=True):
    """A request validated by pydantic (``model_config`` marks the family as pydantic-built)."""

    model_config: ClassVar[dict[str, Any]] = {}


class PydanticResponse(Response, _abstract=True):
    """A response validated by pydantic."""

    model_config: ClassVar[dict[str, Any]] = {}


class PydanticDomainEvent(DomainEvent, _abstract=True):
    """A frozen domain event validated by pydantic."""

    model_config: ClassVar[dict[str, Any]] = {}
