"""A scripted service on the demo's protos: the HTTP-port tests drive it with real clients.

``ProcessFiles`` yields one result per id and hangs on the id ``"hang"``; ``WatchFileEvents``
replays the journal after ``after_sequence`` and then follows it live; ``GetFileStatus`` knows
no file. Every stream records in ``Script.closed`` when its ``finally`` ran.
"""

from __future__ import annotations

import asyncio
import dataclasses
import typing
from datetime import UTC, datetime

import cqrs
from cqrs.requests import bootstrap
from cqrs.requests.request_handler import StreamingRequestHandler
from demo.files.v1 import files_pb2
from examples.files.domain import (
    FileEvent,
    FileProcessedResult,
    FileStatus,
    GetFileStatusQuery,
    ProcessFilesCommand,
    WatchFileEventsQuery,
)
from server.app import App
from server.context import current_rpc
from server.settings import ServerSettings

UNSERVED = ("UploadFile", "UploadFileChunks", "ListFiles")


@dataclasses.dataclass
class Script:
    """What the handlers share with the test: the event journal and the streams that closed."""

    journal: list[FileEvent] = dataclasses.field(default_factory=list)
    closed: list[str] = dataclasses.field(default_factory=list)
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    started: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    ended: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def close(self, name: str) -> None:
        self.closed.append(name)
        self.ended.set()

    def publish(self, count: int = 1) -> None:
        for _ in range(count):
            sequence = len(self.journal) + 1
            self.journal.append(
                FileEvent(
                    sequence=sequence,
                    kind="file_uploaded",
                    file_id=f"f{sequence}",
                    occurred_at=datetime.now(UTC),
                )
            )
        self.changed.set()
        self.changed = asyncio.Event()


class ProcessFiles(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    def __init__(self, script: Script) -> None:
        self._script = script

    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        total = len(request.file_ids)
        try:
            for index, file_id in enumerate(request.file_ids, start=1):
                if file_id == "hang":
                    self._script.started.set()
                    await asyncio.Event().wait()
                yield FileProcessedResult(
                    file_id=file_id,
                    status="completed",
                    processed_at=datetime.now(UTC),
                    index=index,
                    total=total,
                )
        finally:
            self._script.close("ProcessFiles")


class WatchFileEvents(StreamingRequestHandler[WatchFileEventsQuery, FileEvent]):
    def __init__(self, script: Script) -> None:
        self._script = script

    async def handle(self, request: WatchFileEventsQuery) -> typing.AsyncIterator[FileEvent]:
        script, draining, after = self._script, current_rpc().draining, request.after_sequence
        try:
            while True:
                changed = script.changed
                for event in script.journal[after:]:
                    yield event
                    after = event.sequence
                script.started.set()
                waits = (asyncio.ensure_future(changed.wait()), asyncio.ensure_future(draining.wait()))
                try:
                    await asyncio.wait(waits, return_when="FIRST_COMPLETED")
                finally:
                    for wait in waits:
                        wait.cancel()
                if draining.is_set():
                    raise cqrs.UnavailableError(
                        "server is shutting down; reconnect", reason="SERVER_DRAINING"
                    )
        finally:
            script.close("WatchFileEvents")


class GetFileStatus(cqrs.RequestHandler[GetFileStatusQuery, FileStatus]):
    async def handle(self, request: GetFileStatusQuery) -> FileStatus:
        raise cqrs.NotFoundError(f"no file has the id {request.file_id!r}", reason="FILE_NOT_FOUND")


def create_app(script: Script, settings: ServerSettings) -> App:
    container = cqrs.Container()
    container.register_instance(Script, script)

    def streams(mapper: typing.Any) -> None:
        mapper.bind(ProcessFilesCommand, ProcessFiles)
        mapper.bind(WatchFileEventsQuery, WatchFileEvents)

    app = App(
        streaming_mediator=bootstrap.bootstrap_streaming(di_container=container, commands_mapper=streams),
        mediator=bootstrap.bootstrap(
            di_container=container, queries_mapper=lambda m: m.bind(GetFileStatusQuery, GetFileStatus)
        ),
        settings=settings,
    )
    app.add_services(files_pb2, bindings={f"demo.files.v1.FileService/{name}": None for name in UNSERVED})
    return app
