"""Build mediators the way python-cqrs users already do: ``from cqrs.requests import bootstrap``.

``bootstrap.bootstrap_streaming(di_container=..., commands_mapper=lambda m: m.bind(Cmd, Handler),
domain_events_mapper=lambda m: m.bind(Evt, EvtHandler), ...)`` returns a ready
:class:`~cqrs.StreamingRequestMediator`; ``bootstrap.bootstrap(...)`` a :class:`~cqrs.RequestMediator`.
Every check (a handler of the wrong kind, a request bound twice) happens here, not on the first request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from cqrs.container import Resolver
from cqrs.events.map import EventMap
from cqrs.mediator import RequestMediator
from cqrs.middleware import Middleware
from cqrs.requests.map import RequestMap
from cqrs.settings import EventErrorHook, EventFailurePolicy, EventTiming, MediatorSettings, OnClose
from cqrs.streaming import StreamingRequestMediator

__all__ = ["bootstrap", "bootstrap_streaming"]

RequestMapper = Callable[[RequestMap], None]
EventMapper = Callable[[EventMap], None]


def bootstrap_streaming(
    di_container: Resolver | None = None,
    *,
    commands_mapper: RequestMapper | None = None,
    queries_mapper: RequestMapper | None = None,
    domain_events_mapper: EventMapper | None = None,
    middlewares: Sequence[Middleware] = (),
    max_concurrent_event_handlers: int = 10,
    concurrent_event_handle_enable: bool = False,
    global_max_concurrent_event_handlers: int | None = None,
    event_timing: EventTiming = "before_send",
    event_failure_policy: EventFailurePolicy = "isolate",
    on_close: OnClose = "complete",
    max_event_depth: int = 8,
    on_event_error: EventErrorHook | None = None,
    on_startup: Iterable[Callable[[], None]] = (),
) -> StreamingRequestMediator:
    """A :class:`~cqrs.StreamingRequestMediator`; settings are described on :class:`~cqrs.MediatorSettings`.

    ``di_container`` is any object with ``async resolve(type)`` (optionally ``open_scope()``); ``None``
    means a fresh :class:`cqrs.Container`. ``commands_mapper`` and ``queries_mapper`` both bind into the
    mediator's one :class:`~cqrs.RequestMap`. ``on_startup`` callables run once, before building.
    """
    request_map, event_map = _maps(commands_mapper, queries_mapper, domain_events_mapper, on_startup)
    return StreamingRequestMediator(
        request_map,
        event_map=event_map,
        container=di_container,
        middlewares=middlewares,
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
    di_container: Resolver | None = None,
    *,
    commands_mapper: RequestMapper | None = None,
    queries_mapper: RequestMapper | None = None,
    domain_events_mapper: EventMapper | None = None,
    middlewares: Sequence[Middleware] = (),
    max_concurrent_event_handlers: int = 10,
    concurrent_event_handle_enable: bool = False,
    global_max_concurrent_event_handlers: int | None = None,
    event_failure_policy: EventFailurePolicy = "isolate",
    max_event_depth: int = 8,
    on_event_error: EventErrorHook | None = None,
    on_startup: Iterable[Callable[[], None]] = (),
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
    on_startup: Iterable[Callable[[], None]],
) -> tuple[RequestMap, EventMap]:
    for hook in on_startup:
        hook()
    request_map = RequestMap()
    for mapper in (commands_mapper, queries_mapper):
        if mapper is not None:
            mapper(request_map)
    event_map = EventMap()
    if domain_events_mapper is not None:
        domain_events_mapper(event_map)
    return request_map, event_map
