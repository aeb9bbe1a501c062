"""Shared request/event classes and helpers for the mediator tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import cqrs


class Numbers(cqrs.Request):
    count: int = 3
    tail_events: int = 0


class Number(cqrs.Response):
    value: int


class Produced(cqrs.DomainEvent):
    value: int


class Log:
    """An ordered trace shared by a test's handlers (reset per test by creating a new one)."""

    current: ClassVar[Log]

    def __init__(self) -> None:
        self.entries: list[Any] = []
        Log.current = self

    def add(self, entry: Any) -> None:
        self.entries.append(entry)


class NumbersHandler(cqrs.StreamingRequestHandler[Numbers, Number]):
    """Yields 0..count-1, recording ``Produced(i)`` before each yield and ``tail_events`` after the last."""

    async def handle(self, request: Numbers) -> AsyncIterator[Number]:
        log = Log.current
        try:
            for i in range(request.count):
                log.add(("produce", i))
                self.add_event(Produced(value=i))
                yield Number(value=i)
            for j in range(request.tail_events):
                self.add_event(Produced(value=100 + j))
        finally:
            log.add(("handler-finally", asyncio.current_task()))


class RecordProduced(cqrs.EventHandler[Produced]):
    async def handle(self, event: Produced) -> None:
        Log.current.add(("event", event.value))


def streaming(
    *, events: tuple[type[Any], ...] = (RecordProduced,), handler: type[Any] = NumbersHandler, **settings: Any
) -> cqrs.StreamingRequestMediator:
    def bind_events(m: cqrs.EventMap) -> None:
        for event_handler in events:
            m.bind(Produced, event_handler)

    return cqrs.bootstrap_streaming(
        commands_mapper=lambda m: m.bind(Numbers, handler),
        domain_events_mapper=bind_events,
        **settings,
    )


async def spin(times: int = 20) -> None:
    """Let other tasks run a bounded number of steps (used to show that something does NOT happen)."""
    for _ in range(times):
        await asyncio.sleep(0)


async def wait_for(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Safety-net wait for a condition another task makes true."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - conditions owned by code under test, bounded
            await asyncio.sleep(0)
