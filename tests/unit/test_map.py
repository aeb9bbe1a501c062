"""RequestMap / EventMap: one handler per request, many per event, checked at bind time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import cqrs


class Cmd(cqrs.Request):
    pass


class Res(cqrs.Response):
    pass


class Evt(cqrs.DomainEvent):
    pass


class First(cqrs.RequestHandler[Cmd, Res]):
    async def handle(self, request: Cmd) -> Res:
        return Res()


class Second(cqrs.RequestHandler[Cmd, Res]):
    async def handle(self, request: Cmd) -> Res:
        return Res()


class NotAGenerator(cqrs.StreamingRequestHandler[Cmd, Res]):
    async def handle(self, request: Cmd) -> AsyncIterator[Res]:  # type: ignore[override]
        return Res()  # type: ignore[return-value]


class GeneratorInUnary(cqrs.RequestHandler[Cmd, Res]):
    async def handle(self, request: Cmd) -> AsyncIterator[Res]:  # type: ignore[override]
        yield Res()


class EH1(cqrs.EventHandler[Evt]):
    async def handle(self, event: Evt) -> None: ...


class EH2(cqrs.EventHandler[Evt]):
    async def handle(self, event: Evt) -> None: ...


def test_binding_a_request_twice_names_both_handlers() -> None:
    request_map = cqrs.RequestMap()
    request_map.bind(Cmd, First)
    request_map.bind(Cmd, First)  # idempotent
    with pytest.raises(cqrs.HandlerAlreadyBoundError, match=r"Cmd.*First.*Second"):
        request_map.bind(Cmd, Second)


def test_request_map_is_inspectable() -> None:
    request_map = cqrs.RequestMap()
    request_map.bind(Cmd, First)
    assert Cmd in request_map and len(request_map) == 1
    assert request_map.get(Cmd) is First
    assert request_map.get(cqrs.Request) is None
    assert list(request_map.items()) == [(Cmd, First)]
    assert list(request_map) == [Cmd]
    assert "Cmd -> First" in repr(request_map)


def test_handlers_of_the_wrong_kind_are_rejected_at_bind_time() -> None:
    request_map = cqrs.RequestMap()
    with pytest.raises(cqrs.InvalidHandlerError, match="async generator"):
        request_map.bind(Cmd, NotAGenerator)
    with pytest.raises(cqrs.InvalidHandlerError, match="StreamingRequestHandler"):
        request_map.bind(Cmd, GeneratorInUnary)
    with pytest.raises(cqrs.InvalidHandlerError):
        request_map.bind(Cmd, object)


def test_an_event_may_have_many_handlers_in_order() -> None:
    event_map = cqrs.EventMap()
    event_map.bind(Evt, EH1)
    event_map.bind(Evt, EH2)
    assert event_map.get(Evt) == (EH1, EH2)
    assert event_map.get(cqrs.DomainEvent) == ()
    assert Evt in event_map and list(event_map) == [Evt] and len(event_map) == 1
    assert dict(event_map.items()) == {Evt: (EH1, EH2)}
    with pytest.raises(cqrs.HandlerAlreadyBoundError):
        event_map.bind(Evt, EH1)
    with pytest.raises(cqrs.InvalidHandlerError):
        event_map.bind(Evt, First.__init__)  # type: ignore[arg-type]
