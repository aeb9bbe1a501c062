"""The benchmark's streaming handler and event handlers, written once for both libraries.

The project's server (bench/_grpc_app.py), python-cqrs's (bench/_grpc_servers.py, run by
python-cqrs's interpreter) and the in-process core workload (bench/_core_workload.py, run by both)
import this file; ``import cqrs`` resolves to whichever library that interpreter has, so both
libraries run literally the same handler code.

The handler does what the baseline servicer does (one item per requested index, the payload built
once per request) and, when asked, records one domain event per item, handled by two no-op
EventHandlers in process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import cqrs


class StreamItemsRequest(cqrs.Request):
    count: int
    payload_size: int
    with_event: bool
    hold_ms: int


class StreamItem(cqrs.Response):
    index: int
    payload: bytes


class ItemStreamed(cqrs.DomainEvent):
    index: int


class StreamItemsHandler(cqrs.StreamingRequestHandler[StreamItemsRequest, StreamItem]):
    def __init__(self) -> None:
        self._events: list[Any] = []

    @property
    def events(self) -> list[Any]:
        return self._events.copy()

    def clear_events(self) -> None:
        self._events.clear()

    async def handle(self, request: StreamItemsRequest) -> AsyncIterator[StreamItem]:  # type: ignore[override]
        payload = b"x" * request.payload_size
        events = self._events
        with_event = request.with_event
        for index in range(1, request.count + 1):
            if with_event:
                events.append(ItemStreamed(index=index))
            yield StreamItem(index=index, payload=payload)
            if index == 1 and request.hold_ms:
                await asyncio.sleep(request.hold_ms / 1000)


class CountItem(cqrs.EventHandler[ItemStreamed]):
    async def handle(self, event: ItemStreamed) -> None:
        pass


class AuditItem(cqrs.EventHandler[ItemStreamed]):
    async def handle(self, event: ItemStreamed) -> None:
        pass


def bind_events(mapper: Any) -> None:
    mapper.bind(ItemStreamed, CountItem)
    mapper.bind(ItemStreamed, AuditItem)


class PlainContainer:
    """The lightest container python-cqrs accepts (ours too): a new instance per resolve."""

    async def resolve(self, type_: type) -> Any:
        return type_()
