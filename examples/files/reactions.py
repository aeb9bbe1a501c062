"""Event handlers of the demo: what happens between messages when a file is uploaded or processed.

For each event: the audit log (a committed SQLite row) and the status GetFileStatus reads; then the
watchers are told. Without a bus the audit row's number is the event's sequence and the in-process
fan-out tells this process's watchers; with one, PublishFileEvents records a FileEventNotice that the
mediator's broker stores in JetStream before the stream moves on, and every process's watchers read it
there (docs/bus.md).
"""

from __future__ import annotations

from typing import Any

import cqrs
from examples.files.domain import (
    FILE_EVENTS_TOPIC,
    KIND_PROCESSED,
    KIND_UPLOADED,
    NOT_FOUND,
    FileEvent,
    FileEventNotice,
    FileProcessed,
    FileUploaded,
)
from examples.files.fanout import EventFanout
from examples.files.store import FileStore


def _kind(event: FileUploaded | FileProcessed) -> str:
    return KIND_UPLOADED if isinstance(event, FileUploaded) else KIND_PROCESSED


def file_event(event: FileUploaded | FileProcessed, sequence: int = 0) -> FileEvent:
    """What a watcher is sent of ``event``."""
    if isinstance(event, FileUploaded):
        return FileEvent(
            sequence=sequence,
            kind=KIND_UPLOADED,
            file_id=event.file_id,
            occurred_at=event.uploaded_at,
            name=event.name,
            size=event.size,
            sha256=event.sha256,
        )
    return FileEvent(
        sequence=sequence,
        kind=KIND_PROCESSED,
        file_id=event.file_id,
        occurred_at=event.processed_at,
        name=event.name,
        status=event.status,
        size=event.size,
        sha256=event.sha256,
        line_count=event.line_count,
    )


async def append_audit(store: FileStore, event: FileUploaded | FileProcessed) -> int:
    """One committed audit row for ``event``; its sequence number."""
    detail: dict[str, Any] = event.to_dict()
    if isinstance(event, FileUploaded):
        status, occurred_at = "uploaded", event.uploaded_at
    else:
        status, occurred_at = event.status, event.processed_at
    for key in ("file_id", "status", "uploaded_at", "processed_at"):
        detail.pop(key, None)
    return await store.append_audit(
        kind=_kind(event), file_id=event.file_id, status=status, occurred_at=occurred_at, detail=detail
    )


class AuditFileEvents(cqrs.EventHandler[FileUploaded | FileProcessed]):
    """One audit row per event, committed before the stream moves on (the bus numbers the events)."""

    def __init__(self, store: FileStore) -> None:
        self._store = store

    async def handle(self, event: FileUploaded | FileProcessed) -> None:
        await append_audit(self._store, event)


class AuditAndBroadcastFileEvents(cqrs.EventHandler[FileUploaded | FileProcessed]):
    """Without a bus: one audit row per event, then the event, numbered by that row, offered to this
    process's watchers (never waiting for them)."""

    def __init__(self, store: FileStore, fanout: EventFanout) -> None:
        self._store = store
        self._fanout = fanout

    async def handle(self, event: FileUploaded | FileProcessed) -> None:
        sequence = await append_audit(self._store, event)
        self._fanout.publish(file_event(event, sequence))


class PublishFileEvents(cqrs.EventHandler[FileUploaded | FileProcessed]):
    """With a bus: records the event's FileEventNotice, which the mediator sends to its broker."""

    async def handle(self, event: FileUploaded | FileProcessed) -> None:
        payload = file_event(event).to_dict()
        del payload["sequence"]
        self.add_event(FileEventNotice(event_name=_kind(event), topic=FILE_EVENTS_TOPIC, payload=payload))


class RecordFileStatus(cqrs.EventHandler[FileProcessed]):
    """Keeps the status GetFileStatus answers with (unknown ids have no status to keep)."""

    def __init__(self, store: FileStore) -> None:
        self._store = store

    async def handle(self, event: FileProcessed) -> None:
        if event.status != NOT_FOUND:
            await self._store.set_status(event.file_id, event.status, event.processed_at)
