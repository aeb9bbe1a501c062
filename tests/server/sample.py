"""A test-only service (the seed example): tests/server exercise generic server behaviour on it.

It is the demo as it was before the demo grew into a real file service, served from
``tests/protos/sample/files/v1/files.proto`` so these tests do not depend on the demo's shape.
"""

from __future__ import annotations

import typing
from datetime import UTC, datetime

from sample.files.v1 import files_pb2

import cqrs
from cqrs.events.event import Event
from cqrs.requests import bootstrap
from cqrs.requests.request_handler import StreamingRequestHandler
from examples.files.handlers import validate_file_ids  # the demo's rules: one copy
from server.app import App


class ProcessFilesCommand(cqrs.Request):
    file_ids: list[str]


class FileProcessedResult(cqrs.Response):
    file_id: str
    status: str
    processed_at: datetime
    index: int = 0
    total: int = 0


class GetFileStatusQuery(cqrs.Request):
    file_id: str


class FileStatus(cqrs.Response):
    file_id: str
    status: str
    processed_at: datetime | None = None


class FileProcessedEvent(cqrs.DomainEvent):
    file_id: str
    status: str
    processed_at: datetime


class FileStatusStore:
    """The last known status of each processed file, kept in memory."""

    def __init__(self) -> None:
        self._statuses: dict[str, FileStatus] = {}

    def record(self, status: FileStatus) -> None:
        self._statuses[status.file_id] = status

    def get(self, file_id: str) -> FileStatus | None:
        return self._statuses.get(file_id)


class ProcessFilesCommandHandler(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    """Processes each file in order, yielding one result and recording one event per file."""

    def __init__(self) -> None:
        self._events: list[Event] = []

    @property
    def events(self) -> list[Event]:
        return self._events.copy()

    def clear_events(self) -> None:
        self._events.clear()

    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        validate_file_ids(request.file_ids)
        total = len(request.file_ids)
        for index, file_id in enumerate(request.file_ids, start=1):
            processed_at = datetime.now(UTC)
            self._events.append(
                FileProcessedEvent(file_id=file_id, status="completed", processed_at=processed_at)
            )
            yield FileProcessedResult(
                file_id=file_id, status="completed", processed_at=processed_at, index=index, total=total
            )


class RecordFileStatus(cqrs.EventHandler[FileProcessedEvent]):
    """Keeps the status store current: runs between streamed messages."""

    def __init__(self, store: FileStatusStore) -> None:
        self._store = store

    async def handle(self, event: FileProcessedEvent) -> None:
        self._store.record(
            FileStatus(file_id=event.file_id, status=event.status, processed_at=event.processed_at)
        )


class GetFileStatusQueryHandler(cqrs.RequestHandler[GetFileStatusQuery, FileStatus]):
    """Answers from the status store; an unknown file is NOT_FOUND."""

    def __init__(self, store: FileStatusStore) -> None:
        self._store = store

    async def handle(self, request: GetFileStatusQuery) -> FileStatus:
        status = self._store.get(request.file_id)
        if status is None:
            raise cqrs.NotFoundError(
                f"file {request.file_id!r} has not been processed",
                reason="FILE_NOT_FOUND",
                metadata={"file_id": request.file_id},
            )
        return status


def create_app(store: FileStatusStore | None = None) -> App:
    """The sample App; tests pass their own ``store`` to look inside."""
    container = cqrs.Container()
    container.register_instance(FileStatusStore, store or FileStatusStore())
    stream_mediator = bootstrap.bootstrap_streaming(
        di_container=container,
        commands_mapper=lambda m: m.bind(ProcessFilesCommand, ProcessFilesCommandHandler),
        domain_events_mapper=lambda m: m.bind(FileProcessedEvent, RecordFileStatus),
    )
    mediator = bootstrap.bootstrap(
        di_container=container,
        queries_mapper=lambda m: m.bind(GetFileStatusQuery, GetFileStatusQueryHandler),
    )
    app = App(streaming_mediator=stream_mediator, mediator=mediator)
    app.add_services(files_pb2)
    return app
