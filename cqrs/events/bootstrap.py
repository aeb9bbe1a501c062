"""Build an :class:`~cqrs.EventMediator` the python-cqrs way: ``from cqrs.events import bootstrap``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cqrs.container import Resolver
from cqrs.events.map import EventMap
from cqrs.events.mediator import EventMediator
from cqrs.middleware import Middleware

__all__ = ["bootstrap", "setup_mediator"]

EventMapper = Callable[[EventMap], None]


def setup_mediator(
    container: Resolver | Any,
    middlewares: Sequence[Middleware] | None = (),
    events_mapper: EventMapper | None = None,
) -> EventMediator:
    """An :class:`~cqrs.EventMediator` over a new event map filled by ``events_mapper``."""
    event_map = EventMap()
    if events_mapper is not None:
        events_mapper(event_map)
    return EventMediator(event_map, container, middlewares=middlewares)


def bootstrap(
    di_container: Resolver | Any = None,
    middlewares: Sequence[Middleware] | None = (),
    events_mapper: EventMapper | None = None,
    on_startup: Iterable[Callable[[], None]] | None = (),
) -> EventMediator:
    """Run ``on_startup`` callables, then :func:`setup_mediator` (``None`` container: a
    :class:`cqrs.Container`; a bare ``di.Container`` is wrapped)."""
    for hook in on_startup or ():
        hook()
    return setup_mediator(di_container, middlewares, events_mapper)
