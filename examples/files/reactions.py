"""Event handlers of the demo: what happens between messages when a file is uploaded or processed.

For each event: the audit log (a committed SQLite row) and the status GetFileStatus reads; then the
watchers are told. Without a bus the audit row's number is the event's sequence and the in-process
fan-out tells this process's watchers; with one, RecordFileEvent commits the state change, the audit
row and the event's FileEventNotice in one transaction (an outbox), a relay stores the notice in
JetStream, and every process's watchers read it there (docs/bus.md).
"""

from __future__ import annotations

from typing import Protocol

import cqrs
from cqrs.message_brokers.protocol import Message, message_of
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
from examples.files.store import FileStore, audit_fields


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
    kind, status, occurred_at, detail = audit_fields(event)
    return await store.append_audit(
        kind=kind, file_id=event.file_id, status=status, occurred_at=occurred_at, detail=detail
    )


def notice_message(event: FileUploaded | FileProcessed) -> Message:
    """``event`` as the bus carries it: its FileEventNotice (topic ``files``, the file id as key)."""
    payload = file_event(event).to_dict()
    del payload["sequence"]  # the stream sequence numbers it
    return message_of(FileEventNotice(event_name=_kind(event), topic=FILE_EVENTS_TOPIC, payload=payload))


class EventOutbox(Protocol):
    """Commits an event's state change, audit row and outbox row in one transaction."""

    async def record_event(self, event: FileUploaded | FileProcessed, message: Message) -> object: ...


class RecordFileEvent(cqrs.EventHandler[FileUploaded | FileProcessed]):
    """With a bus: the event's state change, audit row and FileEventNotice commit together in the
    outbox, which a relay moves to the bus (docs/bus.md)."""

    def __init__(self, outbox: EventOutbox) -> None:
        self._outbox = outbox

    async def handle(self, event: FileUploaded | FileProcessed) -> None:
        await self._outbox.record_event(event, notice_message(event))


class AuditAndBroadcastFileEvents(cqrs.EventHandler[FileUploaded | FileProcessed]):
    """Without a bus: one audit row per event, then the event, numbered by that row, offered to this
    process's watchers (never waiting for them)."""

    def __init__(self, store: FileStore, fanout: EventFanout) -> None:
        self._store = store
        self._fanout = fanout

    async def handle(self, event: FileUploaded | FileProcessed) -> None:
        sequence = await append_audit(self._store, event)
        self._fanout.publish(file_event(event, sequence))


class RecordFileStatus(cqrs.EventHandler[FileProcessed]):
    """Keeps the status GetFileStatus answers with (unknown ids have no status to keep)."""

    def __init__(self, store: FileStore) -> None:
        self._store = store

    async def handle(self, event: FileProcessed) -> None:
        if event.status != NOT_FOUND:
            await self._store.set_status(event.file_id, event.status, event.processed_at)
