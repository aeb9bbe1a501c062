"""python-cqrs handler fallbacks through our mediators (issue 17)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import cqrs


class Get(cqrs.Request):
    fail: bool = True


class Got(cqrs.Response):
    source: str


class Primary(cqrs.RequestHandler[Get, Got]):
    async def handle(self, request: Get) -> Got:
        if request.fail:
            raise ConnectionError("down")
        return Got(source="primary")


class Backup(cqrs.RequestHandler[Get, Got]):
    async def handle(self, request: Get) -> Got:
        return Got(source="backup")


def _mediator(pair: cqrs.RequestHandlerFallback) -> cqrs.RequestMediator:
    request_map = cqrs.RequestMap()
    request_map.bind(Get, pair)
    return cqrs.RequestMediator(request_map)


async def test_the_fallback_serves_when_the_primary_fails() -> None:
    mediator = _mediator(cqrs.RequestHandlerFallback(Primary, Backup))
    assert await mediator.send(Get()) == Got(source="backup")
    assert await mediator.send(Get(fail=False)) == Got(source="primary")


async def test_only_listed_failures_fall_back() -> None:
    mediator = _mediator(cqrs.RequestHandlerFallback(Primary, Backup, failure_exceptions=(TimeoutError,)))
    with pytest.raises(ConnectionError):
        await mediator.send(Get())


def test_pairs_are_checked_when_made() -> None:
    class Other(cqrs.Request):
        pass

    class OtherHandler(cqrs.RequestHandler[Other, Got]):
        async def handle(self, request: Other) -> Got:
            return Got(source="x")

    with pytest.raises(TypeError, match="same request type"):
        cqrs.RequestHandlerFallback(Primary, OtherHandler)
    with pytest.raises(TypeError, match="must be handler classes"):
        cqrs.RequestHandlerFallback(Primary, Backup())  # type: ignore[arg-type]


class Items(cqrs.Request):
    fail_after: int


class StreamPrimary(cqrs.StreamingRequestHandler[Items, Got]):
    async def handle(self, request: Items) -> AsyncIterator[Got]:
        for _ in range(request.fail_after):
            yield Got(source="primary")
        raise ConnectionError("down")


class StreamBackup(cqrs.StreamingRequestHandler[Items, Got]):
    async def handle(self, request: Items) -> AsyncIterator[Got]:
        yield Got(source="backup")


async def test_a_stream_falls_back_only_before_its_first_item() -> None:
    request_map = cqrs.RequestMap()
    request_map.bind(Items, cqrs.RequestHandlerFallback(StreamPrimary, StreamBackup))
    mediator = cqrs.StreamingRequestMediator(request_map)
    assert [i.source async for i in mediator.stream(Items(fail_after=0))] == ["backup"]
    with pytest.raises(ConnectionError):
        [i async for i in mediator.stream(Items(fail_after=1))]


class Ping(cqrs.DomainEvent, frozen=True):
    pass


RAN: list[str] = []


class PingPrimary(cqrs.EventHandler[Ping]):
    async def handle(self, event: Ping) -> None:
        raise ConnectionError("down")


class PingBackup(cqrs.EventHandler[Ping]):
    async def handle(self, event: Ping) -> None:
        RAN.append("backup")


class Emit(cqrs.RequestHandler[Get, None]):
    async def handle(self, request: Get) -> None:
        self.add_event(Ping())


async def test_an_event_fallback_runs_in_the_mediators_dispatch() -> None:
    RAN.clear()
    request_map, event_map = cqrs.RequestMap(), cqrs.EventMap()
    request_map.bind(Get, Emit)
    event_map.bind(Ping, cqrs.EventHandlerFallback(PingPrimary, PingBackup))
    mediator = cqrs.RequestMediator(request_map, event_map=event_map)
    await mediator.send(Get())
    assert RAN == ["backup"] and mediator.stats.event_handler_failures == 0
