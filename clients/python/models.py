"""Typed results of the SDK: plain frozen dataclasses, no protobuf types leak to the caller."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2

from demo.files.v1 import files_pb2

COMPLETED = "completed"
NOT_FOUND = "not_found"
FAILED = "failed"


def _time(value: Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class FileInfo:
    """A stored file: ``file_id`` is opaque, ``name`` is only a label."""

    file_id: str
    name: str
    size: int
    sha256: str
    uploaded_at: datetime

    @classmethod
    def from_proto(cls, message: files_pb2.FileInfo) -> FileInfo:
        return cls(message.file_id, message.name, message.size, message.sha256, _time(message.uploaded_at))


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessResult:
    """One streamed ProcessFiles result; ``index``/``total`` give the progress (1-based)."""

    file_id: str
    status: str
    processed_at: datetime
    index: int
    total: int
    name: str = ""
    size: int = 0
    sha256: str = ""
    line_count: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == COMPLETED

    @classmethod
    def from_proto(cls, message: files_pb2.FileProcessedResult) -> ProcessResult:
        return cls(
            file_id=message.file_id,
            status=message.status,
            processed_at=_time(message.processed_at),
            index=message.index,
            total=message.total,
            name=message.name,
            size=message.size,
            sha256=message.sha256,
            line_count=message.line_count,
            error=message.error,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class FileStatus:
    file_id: str
    status: str
    processed_at: datetime | None

    @classmethod
    def from_proto(cls, message: files_pb2.FileStatus) -> FileStatus:
        at = _time(message.processed_at) if message.HasField("processed_at") else None
        return cls(message.file_id, message.status, at)


@dataclasses.dataclass(frozen=True, slots=True)
class FileEvent:
    """A live event: ``kind`` is ``file_uploaded`` or ``file_processed``."""

    sequence: int
    kind: str
    file_id: str
    occurred_at: datetime
    name: str = ""
    status: str = ""
    size: int = 0
    sha256: str = ""
    line_count: int = 0

    @classmethod
    def from_proto(cls, message: files_pb2.FileEvent) -> FileEvent:
        return cls(
            sequence=message.sequence,
            kind=message.kind,
            file_id=message.file_id,
            occurred_at=_time(message.occurred_at),
            name=message.name,
            status=message.status,
            size=message.size,
            sha256=message.sha256,
            line_count=message.line_count,
        )


def as_json(value: Any) -> dict[str, Any]:
    """A result as a JSON-ready dict (datetimes in ISO 8601), for the CLI's ``--json``."""
    return {
        key: item.isoformat() if isinstance(item, datetime) else item
        for key, item in dataclasses.asdict(value).items()
    }


class FileServiceError(Exception):
    """A call ended with a non-OK status.

    ``code`` is the grpc status, ``reason`` the server's machine-readable ``ErrorInfo.reason``
    (``UPLOAD_TOO_LARGE``, ``SUBSCRIBER_FELL_BEHIND``, ``SERVER_DRAINING``...) when it sent one,
    ``violations`` the ``BadRequest`` field violations as ``(field, description)``.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        *,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        violations: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.reason = reason
        self.metadata = metadata or {}
        self.violations = violations

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> FileServiceError:
        call: Any = error  # both grpc.Call and grpc.aio.AioRpcError have these methods
        code: grpc.StatusCode = call.code()
        details: str = call.details() or ""
        trailers: Any = call.trailing_metadata() or ()
        reason, metadata, violations = "", dict[str, str](), tuple[tuple[str, str], ...]()
        for key, value in trailers:
            if key != "grpc-status-details-bin":
                continue
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
                if detail.Unpack(info):
                    reason, metadata = info.reason, dict(info.metadata)
                elif detail.Unpack(bad):
                    violations = tuple((v.field, v.description) for v in bad.field_violations)
        return cls(code, details, reason=reason, metadata=metadata, violations=violations)
