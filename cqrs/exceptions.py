"""Errors the mediator raises itself, as opposed to the domain errors of :mod:`cqrs.errors`.

Domain errors in :mod:`cqrs.errors` are outcomes meant for the caller. Most of these mean the mediator
was wired or used wrongly (bugs) and name what is wrong and how to fix it; :class:`SinkError` tells a
streaming consumer that the failure was its own.
"""

from __future__ import annotations

__all__ = [
    "CqrsConfigurationError",
    "EventDepthExceededError",
    "HandlerAlreadyBoundError",
    "HandlerNotFoundError",
    "InvalidHandlerError",
    "ResolutionError",
    "SinkError",
]


class CqrsConfigurationError(Exception):
    """Base: the maps, handlers or container are wired wrongly."""


class HandlerAlreadyBoundError(CqrsConfigurationError):
    """A request class was bound to a second handler."""


class InvalidHandlerError(CqrsConfigurationError, TypeError):
    """A handler class does not fit where it is bound (wrong ``handle`` kind, missing methods)."""


class HandlerNotFoundError(CqrsConfigurationError, LookupError):
    """``send``/``stream`` was called with a request class that has no handler."""


class ResolutionError(CqrsConfigurationError):
    """The container cannot build a requested type."""


class EventDepthExceededError(Exception):
    """Follow-up events went deeper than ``max_event_depth``: almost always a cycle between handlers.

    ``chain`` holds the event class names from the first event to the one that crossed the limit.
    """

    def __init__(self, chain: tuple[str, ...], max_depth: int) -> None:
        self.chain = chain
        self.max_depth = max_depth
        super().__init__(
            f"follow-up events exceeded max_event_depth={max_depth}: {' -> '.join(chain)}; "
            f"a handler probably records an event that leads back to itself (raise max_event_depth "
            f"if the chain is intended)"
        )


class SinkError(Exception):
    """``sink``, given to :meth:`~cqrs.StreamingRequestMediator.stream_into`, raised while taking
    ``item``; ``__cause__`` is what it raised.

    Why a wrapper: a consumer that forwards items (the gRPC server, writing each one to a connection)
    has to tell its own failures (the connection is gone) from the handler's (a bug, or a domain error
    to report), and the same exception types can come from both. ``sink`` says whose it was: a handler
    that streams into a sink of its own may let that sink's SinkError out. Cancellation is not wrapped.
    """

    def __init__(self, item: object, sink: object) -> None:
        self.item = item
        self.sink = sink
        super().__init__(f"the stream's sink failed to take a {type(item).__name__}")
