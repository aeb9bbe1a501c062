"""Build mediators the way python-cqrs users already do: ``from cqrs.requests import bootstrap``.

``bootstrap.bootstrap_streaming(di_container=..., commands_mapper=lambda m: m.bind(Cmd, Handler),
domain_events_mapper=lambda m: m.bind(Evt, EvtHandler), ...)`` returns a ready
:class:`~cqrs.StreamingRequestMediator`; ``bootstrap.bootstrap(...)`` a :class:`~cqrs.RequestMediator`.
Every check (a handler of the wrong kind, a request bound twice) happens here, not on the first request.

python-cqrs's keywords work too: a bare ``di.Container()`` as ``di_container``, ``message_broker=`` (its
notification events are sent there, see :class:`~cqrs.events.EventEmitter`), ``None`` for
``middlewares`` / ``on_startup``, and ``setup_event_emitter`` / ``setup_mediator`` /
``setup_streaming_mediator`` for wiring by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cqrs.container import Resolver, adapt
from cqrs.events.event_emitter import EventEmitter
from cqrs.events.map import EventMap
from cqrs.mediator import RequestMediator
from cqrs.message_brokers.protocol import MessageBroker
from cqrs.middleware import Middleware
from cqrs.requests.map import RequestMap
from cqrs.settings import EventErrorHook, EventFailurePolicy, EventTiming, MediatorSettings, OnClose
from cqrs.streaming import StreamingRequestMediator

__all__ = [
    "bootstrap",
    "bootstrap_streaming",
    "setup_event_emitter",
    "setup_mediator",
    "setup_streaming_mediator",
]

RequestMapper = Callable[[RequestMap], None]
EventMapper = Callable[[EventMap], None]


def bootstrap_streaming(
    di_container: Resolver | Any = None,
    *,
    commands_mapper: RequestMapper | None = None,
    queries_mapper: RequestMapper | None = None,
    domain_events_mapper: EventMapper | None = None,
    middlewares: Sequence[Middleware] | None = (),
    max_concurrent_event_handlers: int = 10,
    concurrent_event_handle_enable: bool = False,
    global_max_concurrent_event_handlers: int | None = None,
    event_timing: EventTiming = "before_send",
    event_failure_policy: EventFailurePolicy = "isolate",
    on_close: OnClose = "complete",
    max_event_depth: int = 8,
    on_event_error: EventErrorHook | None = None,
    on_startup: Iterable[Callable[[], None]] | None = (),
    message_broker: MessageBroker | None = None,
) -> StreamingRequestMediator:
    """A :class:`~cqrs.StreamingRequestMediator`; settings are described on :class:`~cqrs.MediatorSettings`.

    ``di_container`` is any object with ``async resolve(type)`` (optionally ``open_scope()``); ``None``
    means a fresh :class:`cqrs.Container`. ``commands_mapper`` and ``queries_mapper`` both bind into the
    mediator's one :class:`~cqrs.RequestMap`. ``on_startup`` callables run once, before building.
    With ``message_broker``, every recorded event goes through an :class:`~cqrs.events.EventEmitter`
    (handlers, then the broker for notification events).
    """
    request_map, event_map = _maps(commands_mapper, queries_mapper, domain_events_mapper, on_startup)
    return StreamingRequestMediator(
        request_map,
        event_map=event_map,
        container=di_container,
        middlewares=middlewares,
        message_broker=message_broker,
        settings=MediatorSettings(
            event_timing=event_timing,
            concurrent_event_handle_enable=concurrent_event_handle_enable,
            max_concurrent_event_handlers=max_concurrent_event_handlers,
            global_max_concurrent_event_handlers=global_max_concurrent_event_handlers,
            event_failure_policy=event_failure_policy,
            on_close=on_close,
            max_event_depth=max_event_depth,
            on_event_error=on_event_error,
        ),
    )


def bootstrap(
    di_container: Resolver | Any = None,
    *,
    commands_mapper: RequestMapper | None = None,
    queries_mapper: RequestMapper | None = None,
    domain_events_mapper: EventMapper | None = None,
    middlewares: Sequence[Middleware] | None = (),
    max_concurrent_event_handlers: int = 10,
    concurrent_event_handle_enable: bool = False,
    global_max_concurrent_event_handlers: int | None = None,
    event_failure_policy: EventFailurePolicy = "isolate",
    max_event_depth: int = 8,
    on_event_error: EventErrorHook | None = None,
    on_startup: Iterable[Callable[[], None]] | None = (),
    message_broker: MessageBroker | None = None,
) -> RequestMediator:
    """A unary :class:`~cqrs.RequestMediator` (same keywords as :func:`bootstrap_streaming` where they apply).

    Events recorded by a handler are dispatched after ``handle`` returns, before ``send`` returns.
    """
    request_map, event_map = _maps(commands_mapper, queries_mapper, domain_events_mapper, on_startup)
    return RequestMediator(
        request_map,
        event_map=event_map,
        container=di_container,
        middlewares=middlewares,
        message_broker=message_broker,
        settings=MediatorSettings(
            concurrent_event_handle_enable=concurrent_event_handle_enable,
            max_concurrent_event_handlers=max_concurrent_event_handlers,
            global_max_concurrent_event_handlers=global_max_concurrent_event_handlers,
            event_failure_policy=event_failure_policy,
            max_event_depth=max_event_depth,
            on_event_error=on_event_error,
        ),
    )


def _maps(
    commands_mapper: RequestMapper | None,
    queries_mapper: RequestMapper | None,
    domain_events_mapper: EventMapper | None,
    on_startup: Iterable[Callable[[], None]] | None,
) -> tuple[RequestMap, EventMap]:
    for hook in on_startup or ():
        hook()
    request_map = RequestMap()
    for mapper in (commands_mapper, queries_mapper):
        if mapper is not None:
            mapper(request_map)
    event_map = EventMap()
    if domain_events_mapper is not None:
        domain_events_mapper(event_map)
    return request_map, event_map


def setup_event_emitter(
    container: Resolver | Any,
    domain_events_mapper: EventMapper | None = None,
    message_broker: MessageBroker | None = None,
) -> EventEmitter:
    """An :class:`~cqrs.events.EventEmitter` over a new event map (filled by ``domain_events_mapper``)."""
    event_map = EventMap()
    if domain_events_mapper is not None:
        domain_events_mapper(event_map)
    return EventEmitter(event_map, adapt(container), message_broker)


def setup_mediator(
    event_emitter: EventEmitter,
    container: Resolver | Any,
    middlewares: Sequence[Middleware] | None = (),
    *,
    commands_mapper: RequestMapper | None = None,
    queries_mapper: RequestMapper | None = None,
    event_map: EventMap | None = None,
    max_concurrent_event_handlers: int = 10,
    concurrent_event_handle_enable: bool = False,
) -> RequestMediator:
    """A :class:`~cqrs.RequestMediator` whose recorded events go to ``event_emitter``."""
    request_map, _ = _maps(commands_mapper, queries_mapper, None, None)
    return RequestMediator(
        request_map,
        event_map=event_map,
        container=container,
        middlewares=middlewares,
        event_emitter=event_emitter,
        max_concurrent_event_handlers=max_concurrent_event_handlers,
        concurrent_event_handle_enable=concurrent_event_handle_enable,
    )


def setup_streaming_mediator(
    event_emitter: EventEmitter,
    container: Resolver | Any,
    middlewares: Sequence[Middleware] | None = (),
    *,
    commands_mapper: RequestMapper | None = None,
    queries_mapper: RequestMapper | None = None,
    domain_events_mapper: EventMapper | None = None,
    max_concurrent_event_handlers: int = 10,
    concurrent_event_handle_enable: bool = False,
) -> StreamingRequestMediator:
    """A :class:`~cqrs.StreamingRequestMediator` whose recorded events go to ``event_emitter``;
    ``domain_events_mapper`` binds into the emitter's event map (the one that handles them)."""
    request_map, _ = _maps(commands_mapper, queries_mapper, None, None)
    if domain_events_mapper is not None:
        domain_events_mapper(event_emitter.event_map)
    return StreamingRequestMediator(
        request_map,
        container=container,
        middlewares=middlewares,
        event_emitter=event_emitter,
        max_concurrent_event_handlers=max_concurrent_event_handlers,
        concurrent_event_handle_enable=concurrent_event_handle_enable,
    )
