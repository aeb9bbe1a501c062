"""Wires the demo's handlers into mediators and an App.

``python -m server --app examples.files:create_app`` serves it (``make run``).
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path

import cqrs
from cqrs.requests import bootstrap
from cqrs.settings import EventFailurePolicy
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
from examples.files.fanout import DEFAULT_QUEUE_SIZE, EventFanout
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
from examples.files.processing import DEFAULT_CHUNK_BYTES, ReadChunk, read_chunk
from examples.files.reactions import (
    AuditAndBroadcastFileEvents,
    EventOutbox,
    RecordFileEvent,
    RecordFileStatus,
)
from examples.files.store import FileStore
from examples.files.watch import BusWatchSource, LocalWatchSource, WatchSource
from server.app import App
from server.settings import ServerSettings
from server.workers import is_worker

if typing.TYPE_CHECKING:
    from cqrs.bus import JetStreamBroker

DEFAULT_DATA_DIR = "data"
# The demo reads its own settings; the generic CLI knows nothing of them.
DATA_DIR_ENV = "FILES_DATA_DIR"
MAX_UPLOAD_BYTES_ENV = "FILES_MAX_UPLOAD_BYTES"
# The server's own variable: the CLI puts --nats-url there, the supervisor of --workers N too.
NATS_URL_ENV = "CQRS_GRPC_NATS_URL"
# Room for the message framing and the name next to the content, so an upload of exactly the
# limit passes grpc's own receive limit and a larger one gets our clearer RESOURCE_EXHAUSTED.
UPLOAD_OVERHEAD_BYTES = 64 * 1024
# the browser page (docs/demo-page.md), served at / of the HTTP port
WEB_DIR = Path(__file__).with_name("web")


@dataclasses.dataclass(frozen=True, slots=True)
class Demo:
    """The demo App and the parts tests look inside."""

    app: App
    store: FileStore
    fanout: EventFanout
    settings: DemoSettings


def build_demo(
    data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    subscriber_queue_size: int = DEFAULT_QUEUE_SIZE,
    read: ReadChunk = read_chunk,
    nats_url: str | None = None,
    broker: JetStreamBroker | None = None,
) -> Demo:
    """The demo over ``data_dir`` (created if missing); the store closes when the App's server stops.

    With ``nats_url`` (or a ``broker``) each event commits with its state change in an outbox that is
    relayed to the bus, and WatchFileEvents reads them back from it (every process's events); without,
    both stay in this process (docs/bus.md)."""
    if max_upload_bytes < 1:
        raise ValueError(f"max_upload_bytes must be positive, got {max_upload_bytes}")
    settings = DemoSettings(max_upload_bytes=max_upload_bytes, chunk_bytes=chunk_bytes, read_chunk=read)
    fanout = EventFanout(subscriber_queue_size)
    container = cqrs.Container()
    container.register_instance(EventFanout, fanout)
    container.register_instance(DemoSettings, settings)
    outbox = None
    if nats_url is None and broker is None:
        store = FileStore(Path(data_dir))
        source: WatchSource = LocalWatchSource(store, fanout)
        policy: EventFailurePolicy = "isolate"

        def bind_events(mapper: cqrs.EventMap) -> None:
            for event_type in (FileUploaded, FileProcessed):
                if event_type is FileProcessed:
                    mapper.bind(event_type, RecordFileStatus)
                mapper.bind(event_type, AuditAndBroadcastFileEvents)

    else:
        from cqrs.bus import BusReader, JetStreamBroker, field_key
        from examples.files.local_outbox import LocalOutbox, OutboxFileStore

        if broker is None:
            broker = JetStreamBroker(typing.cast(str, nats_url), key=field_key("file_id"))
        store = OutboxFileStore(Path(data_dir))
        outbox = LocalOutbox(store, broker, within=broker.publish_timeout)
        container.register_instance(EventOutbox, outbox)  # type: ignore[type-abstract]
        source = BusWatchSource(BusReader(broker.url, config=broker.config, event_types=[FileEventNotice]))
        policy = "fail"  # the event commits the state change: a failed commit fails the RPC

        def bind_events(mapper: cqrs.EventMap) -> None:
            for event_type in (FileUploaded, FileProcessed):
                mapper.bind(event_type, RecordFileEvent)

    container.register_instance(FileStore, store)
    container.register_instance(WatchSource, source)  # type: ignore[type-abstract]

    def bind_streams(mapper: cqrs.RequestMap) -> None:
        mapper.bind(ProcessFilesCommand, ProcessFilesCommandHandler)
        mapper.bind(WatchFileEventsQuery, WatchFileEventsQueryHandler)

    def bind_unary(mapper: cqrs.RequestMap) -> None:
        mapper.bind(UploadFileCommand, UploadFileCommandHandler)
        mapper.bind(UploadFileChunk, UploadFileChunksHandler)
        mapper.bind(ListFilesQuery, ListFilesQueryHandler)
        mapper.bind(GetFileStatusQuery, GetFileStatusQueryHandler)

    stream_mediator = bootstrap.bootstrap_streaming(
        di_container=container,
        commands_mapper=bind_streams,
        domain_events_mapper=bind_events,
        event_failure_policy=policy,
    )
    mediator = bootstrap.bootstrap(
        di_container=container,
        commands_mapper=bind_unary,
        domain_events_mapper=bind_events,
        event_failure_policy=policy,
    )
    receive_limit = max(ServerSettings().max_receive_message_bytes, max_upload_bytes + UPLOAD_OVERHEAD_BYTES)
    app = App(
        streaming_mediator=stream_mediator,
        mediator=mediator,
        settings=ServerSettings(max_receive_message_bytes=receive_limit),
        broker=broker,
    )
    app.add_services(files_pb2)
    app.on_shutdown(
        store.close
    )  # after the drain: the last audit rows are written, then the WAL is checkpointed
    if outbox is not None:

        @app.on_startup
        async def start_relay() -> None:
            outbox.start()

        app.on_shutdown(outbox.stop)  # callbacks run in reverse: before the store closes
    if isinstance(source, BusWatchSource):
        app.on_shutdown(source.close)
    return Demo(app=app, store=store, fanout=fanout, settings=settings)


def create_app(
    data_dir: str | os.PathLike[str] | None = None,
    max_upload_bytes: int | None = None,
    nats_url: str | None = None,
    database: str | None = None,
) -> App:
    """The demo App (``--app examples.files:create_app``), configured by the environment.

    A parameter left out comes from the environment: ``FILES_DATA_DIR`` (default ``./data``, created
    if missing), ``FILES_MAX_UPLOAD_BYTES`` (default 64 MiB) and ``CQRS_GRPC_NATS_URL`` (the bus; unset:
    none); tests pass them directly. With ``--http-address``, the demo page is served at ``/`` of that port.
    ``database`` (``--database`` / ``CQRS_GRPC_DATABASE``): a ``postgresql://`` URL makes this one of
    N replicas sharing that database and the NATS bus (``examples/files/pgapp.py``); None is SQLite.
    A worker of ``--workers N > 1`` without a bus refuses to start: its watchers would miss the others'
    events.
    """
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    if max_upload_bytes is None:
        max_upload_bytes = _int_from_env(MAX_UPLOAD_BYTES_ENV, DEFAULT_MAX_UPLOAD_BYTES)
    if nats_url is None:
        nats_url = os.environ.get(NATS_URL_ENV) or None
    if nats_url is None and database is None and is_worker():
        raise SystemExit(
            "the demo under --workers N > 1 needs the event bus (each worker would see only its own "
            "events): install nats-server (`make install` does) or pass --nats-url"
        )
    if database is not None:
        from examples.files.pgapp import build_replica_demo  # psycopg is needed only here

        app = build_replica_demo(database, data_dir, max_upload_bytes=max_upload_bytes, nats_url=nats_url)[0]
    else:
        app = build_demo(data_dir, max_upload_bytes=max_upload_bytes, nats_url=nats_url).app
    app.serve_static(WEB_DIR)
    return app


def _int_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of bytes, got {raw!r}") from None
