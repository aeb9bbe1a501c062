"""Event handlers of the demo: what happens between messages when a file is uploaded or processed.

Bound in this order for each event: the audit log (a committed SQLite row), then the status the
GetFileStatus query reads, then the live fan-out. So by the time a watcher sees an event, or a
ProcessFiles client gets the next message, the event is already on disk.
"""

from __future__ import annotations

from typing import Any

import cqrs
from examples.files.domain import (
    KIND_PROCESSED,
    KIND_UPLOADED,
    NOT_FOUND,
    FileEvent,
    FileProcessed,
    FileUploaded,
)
from examples.files.fanout import EventFanout
from examples.files.store import FileStore


def _kind(event: FileUploaded | FileProcessed) -> str:
    return KIND_UPLOADED if isinstance(event, FileUploaded) else KIND_PROCESSED


class AuditFileEvents(cqrs.EventHandler[FileUploaded | FileProcessed]):
    """One audit row per event, committed before the stream moves on."""

    def __init__(self, store: FileStore) -> None:
        self._store = store

    async def handle(self, event: FileUploaded | FileProcessed) -> None:
        detail: dict[str, Any] = event.to_dict()
        if isinstance(event, FileUploaded):
            status, occurred_at = "uploaded", event.uploaded_at
        else:
            status, occurred_at = event.status, event.processed_at
        for key in ("file_id", "status", "uploaded_at", "processed_at"):
            detail.pop(key, None)
        await self._store.append_audit(
            kind=_kind(event), file_id=event.file_id, status=status, occurred_at=occurred_at, detail=detail
        )


class RecordFileStatus(cqrs.EventHandler[FileProcessed]):
    """Keeps the status GetFileStatus answers with (unknown ids have no status to keep)."""

    def __init__(self, store: FileStore) -> None:
        self._store = store

    async def handle(self, event: FileProcessed) -> None:
        if event.status != NOT_FOUND:
            await self._store.set_status(event.file_id, event.status, event.processed_at)


class BroadcastFileEvents(cqrs.EventHandler[FileUploaded | FileProcessed]):
    """Offers each event to WatchFileEvents subscribers, never waiting for them."""

    def __init__(self, fanout: EventFanout) -> None:
        self._fanout = fanout

    async def handle(self, event: FileUploaded | FileProcessed) -> None:
        if isinstance(event, FileUploaded):
            live = FileEvent(
                sequence=0,
                kind=KIND_UPLOADED,
                file_id=event.file_id,
                occurred_at=event.uploaded_at,
                name=event.name,
                size=event.size,
                sha256=event.sha256,
            )
        else:
            live = FileEvent(
                sequence=0,
                kind=KIND_PROCESSED,
                file_id=event.file_id,
                occurred_at=event.processed_at,
                name=event.name,
                status=event.status,
                size=event.size,
                sha256=event.sha256,
                line_count=event.line_count,
            )
        self._fanout.publish(live)
