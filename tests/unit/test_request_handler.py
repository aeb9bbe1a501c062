"""Handler base classes: the events convention and handler_types()."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Generic, TypeVar

import pytest

import cqrs
from cqrs.requests.request_handler import handler_types


class Cmd(cqrs.Request):
    pass


class Res(cqrs.Response):
    pass


class Evt(cqrs.DomainEvent):
    pass


class Unary(cqrs.RequestHandler[Cmd, Res]):
    async def handle(self, request: Cmd) -> Res:
        return Res()


class Command(cqrs.RequestHandler[Cmd, None]):
    async def handle(self, request: Cmd) -> None:
        return None


class Streaming(cqrs.StreamingRequestHandler[Cmd, Res]):
    async def handle(self, request: Cmd) -> AsyncIterator[Res]:
        yield Res()


R = TypeVar("R", bound=cqrs.Response)


class Intermediate(cqrs.StreamingRequestHandler[Cmd, R], Generic[R]):
    pass


class Concrete(Intermediate[Res]):
    async def handle(self, request: Cmd) -> AsyncIterator[Res]:
        yield Res()


class Sub(Streaming):
    pass


def test_handler_types_resolves_generic_arguments_through_the_mro() -> None:
    assert handler_types(Unary) == (Cmd, Res)
    assert handler_types(Command) == (Cmd, None)
    assert handler_types(Streaming) == (Cmd, Res)
    assert handler_types(Sub) == (Cmd, Res)
    assert handler_types(Concrete) == (Cmd, Res)


def test_handler_types_rejects_an_undeclared_handler() -> None:
    class Bare:
        async def handle(self, request: Cmd) -> None: ...

    with pytest.raises(TypeError, match="Bare"):
        handler_types(Bare)


def test_default_events_convention() -> None:
    handler = Unary()
    assert handler.events == []
    handler.add_event(Evt())
    events = handler.events
    assert events == [Evt()]
    events.clear()  # a copy: the handler keeps its own
    assert handler.events == [Evt()]
    handler.clear_events()
    assert handler.events == []


def test_events_work_when_a_subclass_init_skips_super() -> None:
    class NoSuper(cqrs.RequestHandler[Cmd, Res]):
        def __init__(self) -> None:
            pass

        async def handle(self, request: Cmd) -> Res:
            self.add_event(Evt())
            return Res()

    handler = NoSuper()
    assert handler.events == []
    handler.add_event(Evt())
    assert len(handler.events) == 1


def test_a_handler_appending_to_its_own_events_list_directly_gets_a_list_of_its_own() -> None:
    """``self._events`` exists without an ``__init__`` (handlers are built per event, so the recorder
    has none) and is never shared between instances."""

    class Direct(cqrs.EventHandler[Evt]):
        async def handle(self, event: Evt) -> None:
            self._events.append(Evt())

    first, second = Direct(), Direct()
    first._events.append(Evt())
    assert first.events == (Evt(),) and second.events == ()  # event handlers give tuples (python-cqrs)
    assert second._events == [] and second._events is second._events
    first.clear_events()
    assert first.events == () and first._events == []
    assert not isinstance(Direct._events, list), "class access gives the descriptor, builds nothing"


def test_a_class_level_events_list_is_not_shared_between_instances() -> None:
    class ClassList(cqrs.EventHandler[Evt]):
        _events: list[cqrs.DomainEvent] = []  # the pattern under test: one list on the class

        async def handle(self, event: Evt) -> None:
            self._events.append(Evt())

    first, second = ClassList(), ClassList()
    first._events.append(Evt())
    assert first.events == (Evt(),) and second.events == ()  # event handlers give tuples (python-cqrs)
