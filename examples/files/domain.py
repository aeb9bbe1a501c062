"""Requests, responses and events of the demo; request/response names match the messages in files.proto.

Statuses are plain strings so they read the same in every client and in ``buf curl``'s JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import cqrs

COMPLETED = "completed"
NOT_FOUND = "not_found"
FAILED = "failed"
UPLOADED = "uploaded"

KIND_UPLOADED = "file_uploaded"
KIND_PROCESSED = "file_processed"

FILE_EVENTS_TOPIC = "files"
"""The bus topic of FileEventNotice: subjects ``<prefix>.<partition>.files.<file_id>``."""


class UploadFileCommand(cqrs.Request):
    name: str
    content: bytes


class UploadFileChunk(cqrs.Request):
    """One message of UploadFileChunks: the name (first), a piece of content, or the SHA-256 (last)."""

    name: str | None = None
    data: bytes | None = None
    sha256: str | None = None


class FileInfo(cqrs.Response):
    file_id: str
    name: str
    size: int
    sha256: str
    uploaded_at: datetime


class ListFilesQuery(cqrs.Request):
    pass


class FileList(cqrs.Response):
    files: list[FileInfo]


class ProcessFilesCommand(cqrs.Request):
    file_ids: list[str]


class FileProcessedResult(cqrs.Response):
    file_id: str
    status: str
    processed_at: datetime
    index: int = 0
    total: int = 0
    name: str = ""
    size: int = 0
    sha256: str = ""
    line_count: int = 0
    error: str = ""


class GetFileStatusQuery(cqrs.Request):
    file_id: str


class FileStatus(cqrs.Response):
    file_id: str
    status: str
    processed_at: datetime | None = None


class WatchFileEventsQuery(cqrs.Request):
    after_sequence: int | None = None  # None: from now on; 0: from the first event


class FileEvent(cqrs.Response):
    sequence: int
    kind: str
    file_id: str
    occurred_at: datetime
    name: str = ""
    status: str = ""
    size: int = 0
    sha256: str = ""
    line_count: int = 0


class FileUploaded(cqrs.DomainEvent):
    """A file was stored; recorded by UploadFile, handled after the RPC's handler returns."""

    file_id: str
    name: str
    size: int
    sha256: str
    uploaded_at: datetime


class FileProcessed(cqrs.DomainEvent):
    """One ProcessFiles result (any status); handled between that message and the next."""

    file_id: str
    status: str
    processed_at: datetime
    name: str = ""
    size: int = 0
    sha256: str = ""
    line_count: int = 0
    error: str = ""


class FileEventNotice(cqrs.NotificationEvent[dict[str, Any]]):
    """A FileUploaded or FileProcessed as the bus carries it: ``event_name`` is its kind, ``payload``
    the fields of a FileEvent but its sequence (the stream sequence gives that)."""
