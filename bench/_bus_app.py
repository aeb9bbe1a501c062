"""The producer of the bus latency run: ``python -m server --app bench._bus_app:create_app --nats-url U``.

StreamItems records, for each item, one FileEventNotice (the demo's bus event, stamped just before the
yield) that the mediator publishes to the bus before the item is sent. A demo server on the same bus
hands it to its watchers, so the run measures handler yield -> bus -> another process's watch -> client
without the demo's own per-item work (file reads, SQLite) in the way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from benchgrpc.v1 import bench_pb2

import cqrs
from bench._stream_handlers import StreamItem, StreamItemsHandler, StreamItemsRequest
from cqrs.bus import JetStreamBroker, field_key
from cqrs.requests import bootstrap
from examples.files.domain import FILE_EVENTS_TOPIC, KIND_PROCESSED, FileEventNotice
from server.app import App

KEYS = 16  # file ids the notices spread over (ordering keys, so partitions)


class NoticeItemsHandler(StreamItemsHandler):
    """StreamItems recording one FileEventNotice per item instead of a domain event."""

    async def handle(self, request: StreamItemsRequest) -> AsyncIterator[StreamItem]:  # type: ignore[override]
        for index in range(1, request.count + 1):
            payload = {
                "kind": KIND_PROCESSED,
                "file_id": f"f_bench_{index % KEYS}",
                "occurred_at": datetime.now(UTC).isoformat(),
                "status": "completed",
            }
            self._events.append(
                FileEventNotice(event_name=KIND_PROCESSED, topic=FILE_EVENTS_TOPIC, payload=payload)
            )
            yield StreamItem(index=index, payload=b"")


def create_app() -> App:
    broker = JetStreamBroker(key=field_key("file_id"))  # the URL comes from --nats-url
    mediator = bootstrap.bootstrap_streaming(
        di_container=cqrs.Container(),
        commands_mapper=lambda m: m.bind(StreamItemsRequest, NoticeItemsHandler),
        message_broker=broker,
    )
    app = App(streaming_mediator=mediator, broker=broker)
    app.add_services(bench_pb2)
    return app
