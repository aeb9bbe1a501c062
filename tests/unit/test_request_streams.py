"""Client-streaming and bidirectional handlers: a RequestStream in, one response or a stream out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

import cqrs
from cqrs.requests.request_handler import handler_types

from ._support import Log


class Chunk(cqrs.Request):
    size: int = 0


class Total(cqrs.Response):
    size: int


class ChunkRead(cqrs.DomainEvent):
    size: int


class Ping(cqrs.Request):
    n: int = 0


class Pong(cqrs.Response):
    n: int


class Ponged(cqrs.DomainEvent):
    n: int


class SumChunks(cqrs.ClientStreamingRequestHandler[Chunk, Total]):
    async def handle(self, requests: AsyncIterator[Chunk]) -> Total:
        total = 0
        async for chunk in requests:
            Log.current.add(("read", chunk.size))
            self.add_event(ChunkRead(size=chunk.size))
            total += chunk.size
        self.add_event(ChunkRead(size=-1))
        return Total(size=total)


class ReadsOne(cqrs.ClientStreamingRequestHandler[Chunk, Total]):
    async def handle(self, requests: AsyncIterator[Chunk]) -> Total:
        async for chunk in requests:
            return Total(size=chunk.size)
        return Total(size=0)


class Echo(cqrs.BidiStreamingRequestHandler[Ping, Pong]):
    async def handle(self, requests: AsyncIterator[Ping]) -> AsyncIterator[Pong]:
        try:
            async for ping in requests:
                Log.current.add(("ping", ping.n))
                self.add_event(Ponged(n=ping.n))
                yield Pong(n=ping.n)
        finally:
            Log.current.add(("handler-finally", asyncio.current_task()))


class RecordChunk(cqrs.EventHandler[ChunkRead]):
    async def handle(self, event: ChunkRead) -> None:
        Log.current.add(("event", event.size))


class RecordPong(cqrs.EventHandler[Ponged]):
    async def handle(self, event: Ponged) -> None:
        Log.current.add(("event", event.n))


async def source(cls: type[cqrs.Request], values: list[int]) -> AsyncIterator[cqrs.Request]:
    try:
        for value in values:
            Log.current.add(("pulled", value))
            yield cls(**{next(iter(cls.__dataclass_fields__)): value})  # type: ignore[attr-defined]
    finally:
        Log.current.add(("source-closed",))


def unary(handler: type[object] = SumChunks) -> cqrs.RequestMediator:
    return cqrs.bootstrap(
        commands_mapper=lambda m: m.bind(Chunk, handler),
        domain_events_mapper=lambda m: m.bind(ChunkRead, RecordChunk),
    )


def bidi(**settings: object) -> cqrs.StreamingRequestMediator:
    return cqrs.bootstrap_streaming(
        commands_mapper=lambda m: m.bind(Ping, Echo),
        domain_events_mapper=lambda m: m.bind(Ponged, RecordPong),
        **settings,  # type: ignore[arg-type]
    )


async def test_a_client_streaming_handler_reads_every_request_and_its_events_run_between_them() -> None:
    log = Log()
    total = await unary().send(cqrs.RequestStream(Chunk, source(Chunk, [3, 4])))
    assert total == Total(size=7)
    assert log.entries == [
        ("pulled", 3),
        ("read", 3),
        ("event", 3),  # dispatched before the next request is awaited
        ("pulled", 4),
        ("read", 4),
        ("event", 4),
        ("source-closed",),
        ("event", -1),  # recorded after the last request: dispatched before send returns
    ]


async def test_a_handler_that_stops_reading_early_has_the_source_closed_before_send_returns() -> None:
    log = Log()
    total = await unary(ReadsOne).send(cqrs.RequestStream(Chunk, source(Chunk, [5, 6, 7])))
    assert total == Total(size=5)
    assert log.entries == [("pulled", 5), ("source-closed",)]


async def test_a_bidi_handler_answers_as_it_reads_with_events_before_each_answer() -> None:
    log = Log()
    answers = [p.n async for p in bidi().stream(cqrs.RequestStream(Ping, source(Ping, [1, 2])))]
    assert answers == [1, 2]
    trace = [e for e in log.entries if e[0] != "handler-finally"]
    assert trace == [
        ("pulled", 1),
        ("ping", 1),
        ("event", 1),  # before_send: handled before the answer is released
        ("pulled", 2),
        ("ping", 2),
        ("event", 2),
        ("source-closed",),
    ]


async def test_closing_a_bidi_stream_closes_the_handler_in_the_consumers_task_and_the_source() -> None:
    log = Log()
    async with contextlib.aclosing(
        bidi().stream(cqrs.RequestStream(Ping, source(Ping, [1, 2, 3])))
    ) as stream:
        async for pong in stream:
            assert pong.n == 1
            break
    assert ("handler-finally", asyncio.current_task()) in log.entries
    assert log.entries[-1] == ("source-closed",)
    assert ("pulled", 2) not in log.entries  # nothing is read ahead of the handler


async def test_a_request_stream_given_to_a_single_request_handler_is_refused_and_vice_versa() -> None:
    class One(cqrs.StreamingRequestHandler[Ping, Pong]):
        async def handle(self, request: Ping) -> AsyncIterator[Pong]:
            yield Pong(n=request.n)

    single = cqrs.bootstrap_streaming(commands_mapper=lambda m: m.bind(Ping, One))
    with pytest.raises(TypeError, match="not a RequestStream"):
        single.stream(cqrs.RequestStream(Ping, source(Ping, [1])))
    with pytest.raises(TypeError, match=r"pass cqrs.RequestStream\(Chunk, requests\)"):
        await unary().send(Chunk(size=1))


def test_handler_kinds_are_checked_when_bound() -> None:
    class NotAGenerator(cqrs.BidiStreamingRequestHandler[Ping, Pong]):
        async def handle(self, requests: AsyncIterator[Ping]) -> AsyncIterator[Pong]:  # type: ignore[override]
            return requests

    class AGenerator(cqrs.ClientStreamingRequestHandler[Chunk, Total]):
        async def handle(self, requests: AsyncIterator[Chunk]) -> AsyncIterator[Total]:  # type: ignore[override]
            yield Total(size=0)

    with pytest.raises(cqrs.InvalidHandlerError, match="BidiStreamingRequestHandler"):
        cqrs.RequestMap().bind(Ping, NotAGenerator)
    with pytest.raises(cqrs.InvalidHandlerError, match="subclass BidiStreamingRequestHandler"):
        cqrs.RequestMap().bind(Chunk, AGenerator)
    with pytest.raises(cqrs.InvalidHandlerError, match="StreamingRequestMediator cannot run it"):
        cqrs.bootstrap_streaming(commands_mapper=lambda m: m.bind(Chunk, SumChunks))


def test_handler_types_reads_the_request_and_response_classes_of_both_kinds() -> None:
    assert handler_types(SumChunks) == (Chunk, Total)
    assert handler_types(Echo) == (Ping, Pong)


def test_a_request_stream_needs_a_request_class() -> None:
    with pytest.raises(TypeError, match=r"cqrs\.Request class"):
        cqrs.RequestStream(int, source(Ping, []))  # type: ignore[type-var]
