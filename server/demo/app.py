"""Wires the demo's handlers into mediators and an App (``python -m server`` serves this)."""

from __future__ import annotations

import cqrs
from cqrs.requests import bootstrap
from demo.files.v1 import files_pb2
from server.app import App
from server.demo.domain import FileProcessedEvent, GetFileStatusQuery, ProcessFilesCommand
from server.demo.handlers import (
    FileStatusStore,
    GetFileStatusQueryHandler,
    ProcessFilesCommandHandler,
    RecordFileStatus,
)


def create_app(store: FileStatusStore | None = None) -> App:
    """The demo App; tests pass their own ``store`` to look inside."""
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
