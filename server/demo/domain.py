"""Requests, responses and events of the demo; their names match the messages in files.proto."""

from __future__ import annotations

from datetime import datetime

import cqrs


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
