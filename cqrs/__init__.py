"""cqrs: a CQRS mediator with a streaming twin, events between yields, and middleware around both.

It imports nothing from gRPC; ``server`` builds on it. Public names are listed in ``__all__``.
"""

from cqrs.container import Container, Resolver, SupportsScope
from cqrs.errors import (
    AlreadyExistsError,
    DomainError,
    FailedPreconditionError,
    FieldViolation,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    ValidationError,
)
from cqrs.events.event import (
    DomainEvent,
    ECSTEvent,
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
from cqrs.exceptions import (
    CqrsConfigurationError,
    EventDepthExceededError,
    HandlerAlreadyBoundError,
    HandlerNotFoundError,
    InvalidHandlerError,
    ResolutionError,
    SinkError,
)
from cqrs.fallback import EventHandlerFallback, RequestHandlerFallback
from cqrs.mediator import RequestMediator
from cqrs.middleware import Middleware, Next, StreamClosed
from cqrs.models import PydanticDomainEvent, PydanticRequest, PydanticResponse
from cqrs.requests.bootstrap import bootstrap, bootstrap_streaming
from cqrs.requests.map import RequestMap
from cqrs.requests.request import Request, Response
from cqrs.requests.request_handler import (
    BidiStreamingRequestHandler,
    ClientStreamingRequestHandler,
    RequestHandler,
    StreamingRequestHandler,
    SyncStreamingRequestHandler,
    handler_types,
)
from cqrs.requests.request_stream import RequestStream
from cqrs.settings import MediatorSettings
from cqrs.streaming import StreamingRequestMediator

__all__ = [
    "AlreadyExistsError",
    "BidiStreamingRequestHandler",
    "ClientStreamingRequestHandler",
    "Container",
    "CqrsConfigurationError",
    "DomainError",
    "DomainEvent",
    "ECSTEvent",
    "Event",
    "EventDepthExceededError",
    "EventEmitter",
    "EventHandler",
    "EventHandlerFallback",
    "EventMap",
    "EventMediator",
    "FailedPreconditionError",
    "FieldViolation",
    "HandlerAlreadyBoundError",
    "HandlerNotFoundError",
    "IDomainEvent",
    "IEvent",
    "INotificationEvent",
    "InvalidHandlerError",
    "MediatorSettings",
    "Middleware",
    "Next",
    "NotFoundError",
    "NotificationEvent",
    "OutOfRangeError",
    "PermissionDeniedError",
    "PydanticDomainEvent",
    "PydanticRequest",
    "PydanticResponse",
    "Request",
    "RequestHandler",
    "RequestHandlerFallback",
    "RequestMap",
    "RequestMediator",
    "RequestStream",
    "ResolutionError",
    "Resolver",
    "ResourceExhaustedError",
    "Response",
    "SinkError",
    "StreamClosed",
    "StreamingRequestHandler",
    "StreamingRequestMediator",
    "SupportsScope",
    "SyncStreamingRequestHandler",
    "UnauthenticatedError",
    "UnavailableError",
    "ValidationError",
    "bootstrap",
    "bootstrap_streaming",
    "handler_types",
]
