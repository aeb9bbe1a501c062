"""The demo as one of N replicas: state and content in PostgreSQL, events relayed to NATS by an outbox.

``python -m server --app examples.files:create_app --database postgresql://... --nats-url nats://...``
builds this (docs/deployment.md). Differences from the embedded demo (``build_demo``):

- the store is :class:`PgFileStore`; ``data_dir`` holds only uploads being received;
- each event's state change, audit row and outbox row commit in one transaction (``RecordFileEvent``),
  inside the event dispatch, so with ``before_send`` a client gets a result only after it committed;
- event handlers fail the RPC (``event_failure_policy="fail"``): a failed commit is never acknowledged;
- the App owns a :class:`~cqrs.bus.JetStreamBroker` (``--nats-url``) that the outbox relay publishes to,
  as the ``FileEventNotice`` the embedded demo's mediator would send: WatchFileEvents reads it back from
  the bus on every replica (``BusWatchSource``), numbered by the stream sequence;
- health is NOT_SERVING while the database does not answer, not while NATS does (the outbox holds the
  events meanwhile).
"""

from __future__ import annotations

import asyncio
import os

import cqrs
from cqrs.bus import BusReader, JetStreamBroker, field_key
from cqrs.requests import bootstrap
from demo.files.v1 import files_pb2
from examples.files.domain import (
    FileEventNotice,
    FileProcessed,
    FileUploaded,
    GetFileStatusQuery,
    ListFilesQuery,
    ProcessFilesCommand,
    UploadFileChunk,
    UploadFileCommand,
    WatchFileEventsQuery,
)
from examples.files.handlers import (
    DEFAULT_MAX_UPLOAD_BYTES,
    DemoSettings,
    GetFileStatusQueryHandler,
    ListFilesQueryHandler,
    ProcessFilesCommandHandler,
    UploadFileChunksHandler,
    UploadFileCommandHandler,
    WatchFileEventsQueryHandler,
)
from examples.files.outbox import OutboxRelay
from examples.files.pgstore import PgFileStore
from examples.files.reactions import EventOutbox, RecordFileEvent
from examples.files.store import FileStore
from examples.files.watch import BusWatchSource, WatchSource
from server.app import App
from server.settings import ServerSettings

UPLOAD_OVERHEAD_BYTES = 64 * 1024
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


def build_replica_demo(
    database: str,
    data_dir: str | os.PathLike[str],
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    nats_url: str | None = None,
    broker: JetStreamBroker | None = None,
    relay_poll_interval: float = 0.5,
) -> tuple[App, PgFileStore, OutboxRelay]:
    """The replica App over ``database`` and the bus at ``nats_url``; the store and relay are returned
    for tests to look inside."""
    store = PgFileStore(database, data_dir)
    url = nats_url or DEFAULT_NATS_URL
    broker = broker if broker is not None else JetStreamBroker(url, key=field_key("file_id"))
    source = BusWatchSource(BusReader(url, config=broker.config, event_types=[FileEventNotice]))
    relay = OutboxRelay(database, broker, poll_interval=relay_poll_interval)
    settings = DemoSettings(max_upload_bytes=max_upload_bytes)
    container = cqrs.Container()
    container.register_instance(FileStore, store)
    container.register_instance(EventOutbox, store)  # type: ignore[type-abstract]
    container.register_instance(WatchSource, source)  # type: ignore[type-abstract]
    container.register_instance(DemoSettings, settings)

    def bind_events(mapper: cqrs.EventMap) -> None:
        for event_type in (FileUploaded, FileProcessed):
            mapper.bind(event_type, RecordFileEvent)

    def bind_streams(mapper: cqrs.RequestMap) -> None:
        mapper.bind(ProcessFilesCommand, ProcessFilesCommandHandler)
        mapper.bind(WatchFileEventsQuery, WatchFileEventsQueryHandler)

    def bind_unary(mapper: cqrs.RequestMap) -> None:
        mapper.bind(UploadFileCommand, UploadFileCommandHandler)
        mapper.bind(UploadFileChunk, UploadFileChunksHandler)
        mapper.bind(ListFilesQuery, ListFilesQueryHandler)
        mapper.bind(GetFileStatusQuery, GetFileStatusQueryHandler)

    app = App(
        streaming_mediator=bootstrap.bootstrap_streaming(
            di_container=container,
            commands_mapper=bind_streams,
            domain_events_mapper=bind_events,
            event_failure_policy="fail",
        ),
        mediator=bootstrap.bootstrap(
            di_container=container,
            commands_mapper=bind_unary,
            domain_events_mapper=bind_events,
            event_failure_policy="fail",
        ),
        settings=ServerSettings(
            max_receive_message_bytes=max(
                ServerSettings().max_receive_message_bytes, max_upload_bytes + UPLOAD_OVERHEAD_BYTES
            )
        ),
        broker=broker,
        broker_in_health=False,  # the outbox keeps RPCs going while NATS is away
    )
    app.add_services(files_pb2)

    @app.on_startup
    async def open_database() -> None:
        await asyncio.to_thread(store.prepare)
        await store.open()
        relay.start()

    app.on_shutdown(store.aclose)
    app.on_shutdown(source.close)
    app.on_shutdown(relay.stop)  # callbacks run in reverse: the relay stops before the pool closes
    app.add_health_check(store.healthy)
    return app, store, relay
