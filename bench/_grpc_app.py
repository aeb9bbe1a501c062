"""The benchmark RPC served by this project: ``python -m server --app bench._grpc_app:create_app``.

The handler does what the baseline servicer does (one item per requested index, the payload built
once per request) and, when asked, records one domain event per item, handled by two no-op
EventHandlers in process. Needs the generated ``benchgrpc`` package on the path (bench/_grpc_gen.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from benchgrpc.v1 import bench_pb2

import cqrs
from cqrs.requests import bootstrap
from server.app import App


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
        self._events: list[cqrs.Event] = []

    @property
    def events(self) -> list[cqrs.Event]:
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


def _bind_events(mapper: cqrs.EventMap) -> None:
    mapper.bind(ItemStreamed, CountItem)
    mapper.bind(ItemStreamed, AuditItem)


def create_app() -> App:
    mediator = bootstrap.bootstrap_streaming(
        di_container=cqrs.Container(),
        commands_mapper=lambda m: m.bind(StreamItemsRequest, StreamItemsHandler),
        domain_events_mapper=_bind_events,
    )
    app = App(streaming_mediator=mediator)
    app.add_services(bench_pb2)
    return app
