"""``raise Status(...)`` ends an RPC with the handler's own status, and every error keeps the
trailers the handler set (unary and server-streaming, before or after streamed messages)."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from sample.files.v1 import files_pb2, files_pb2_grpc

import cqrs
from cqrs.requests.request_handler import StreamingRequestHandler
from server import Status, current_rpc
from server.testing import ServedApp, serve_for_test
from tests.server.helpers import app_with, error_info, trailer
from tests.server.sample import (
    FileProcessedResult,
    FileStatus,
    GetFileStatusQuery,
    ProcessFilesCommand,
)

HANDLER_TRAILERS = (("x-request-cost", "7"), ("x-trace-bin", b"\x00\x01\xff"))


def fail(kind: str) -> None:
    """Set the trailers a handler would set, then end the way ``kind`` names."""
    rpc = current_rpc()
    if kind == "stale-details":  # a handler's own grpc-status-details-bin must not describe our status
        stale = status_pb2.Status(code=grpc.StatusCode.OK.value[0], message="stale").SerializeToString()
        rpc.set_trailing_metadata(*HANDLER_TRAILERS, ("grpc-status-details-bin", stale))
    else:
        rpc.set_trailing_metadata(*HANDLER_TRAILERS)
    if kind == "status":
        raise Status(
            grpc.StatusCode.ABORTED,
            "file f1 is being written: retry in 3 s",
            details=[
                error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=3)),
                error_details_pb2.ErrorInfo(
                    reason="FILE_LOCKED", domain="files.example", metadata={"file": "f1"}
                ),
                error_details_pb2.DebugInfo(detail="held by writer 12"),
            ],
        )
    if kind == "bare-status":
        raise Status(grpc.StatusCode.UNAVAILABLE, "the store is down for maintenance")
    if kind in ("domain", "stale-details"):
        raise cqrs.NotFoundError("file 'zz' is gone", reason="FILE_GONE")
    if kind == "internal":
        raise RuntimeError("secret at /etc/app.py")


class FailingStream(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    """Yields one result per id after the first, then fails the way the first id names."""

    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        kind, *ids = request.file_ids
        for file_id in ids:
            yield FileProcessedResult(file_id=file_id, status="completed", processed_at=datetime.now(UTC))
        fail(kind)


class FailingUnary(cqrs.RequestHandler[GetFileStatusQuery, FileStatus]):
    async def handle(self, request: GetFileStatusQuery) -> FileStatus:
        fail(request.file_id)
        return FileStatus(file_id=request.file_id, status="completed")


async def unary_failure(served: ServedApp, kind: str) -> grpc.aio.AioRpcError:
    stub = served.stub(files_pb2_grpc.FileServiceStub)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id=kind))
    return failed.value


async def stream_failure(served: ServedApp, kind: str, k: int) -> grpc.aio.AioRpcError:
    stub = served.stub(files_pb2_grpc.FileServiceStub)
    ids = [f"f{n}" for n in range(k)]
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        async for result in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=[kind, *ids])):
            received.append(result.file_id)
    assert received == ids
    return failed.value


@pytest.fixture
async def served() -> typing.AsyncIterator[ServedApp]:
    async with serve_for_test(app_with(FailingStream, unary_handler=FailingUnary)) as served:
        yield served


async def failures(served: ServedApp, kind: str) -> list[grpc.aio.AioRpcError]:
    """The same failure as a unary RPC and as a stream ending before and after 2 messages."""
    return [
        await unary_failure(served, kind),
        await stream_failure(served, kind, 0),
        await stream_failure(served, kind, 2),
    ]


def assert_handler_trailers(error: grpc.aio.AioRpcError) -> None:
    for key, value in HANDLER_TRAILERS:
        assert trailer(error, key) == value, f"{key} missing from {error.trailing_metadata()!r}"


async def test_a_status_ends_the_rpc_with_its_code_message_and_only_its_details(served: ServedApp) -> None:
    for error in await failures(served, "status"):
        assert error.code() is grpc.StatusCode.ABORTED
        assert error.details() == "file f1 is being written: retry in 3 s"
        status = rpc_status.from_call(error)  # also checks code and message match the trailer's
        assert status is not None
        kinds = [detail.type_url.rsplit("/", 1)[-1] for detail in status.details]
        assert kinds == ["google.rpc.RetryInfo", "google.rpc.ErrorInfo", "google.rpc.DebugInfo"]
        retry = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(retry) and retry.retry_delay.seconds == 3
        info = error_info(status)
        assert (info.reason, info.domain, dict(info.metadata)) == (
            "FILE_LOCKED",
            "files.example",
            {"file": "f1"},
        )
        assert_handler_trailers(error)


async def test_a_status_without_details_sends_no_details_trailer(served: ServedApp) -> None:
    for error in await failures(served, "bare-status"):
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert error.details() == "the store is down for maintenance"
        assert rpc_status.from_call(error) is None
        assert trailer(error, "grpc-status-details-bin") is None
        assert_handler_trailers(error)


async def test_a_domain_error_keeps_the_trailers_the_handler_set(served: ServedApp) -> None:
    for error in await failures(served, "domain"):
        assert error.code() is grpc.StatusCode.NOT_FOUND
        status = rpc_status.from_call(error)
        assert status is not None and error_info(status).reason == "FILE_GONE"
        assert_handler_trailers(error)


async def test_an_internal_error_keeps_the_handler_trailers_and_its_error_id(served: ServedApp) -> None:
    for error in await failures(served, "internal"):
        assert error.code() is grpc.StatusCode.INTERNAL
        error_id = trailer(error, "error-id")
        assert isinstance(error_id, str) and error_id in error.details()
        status = rpc_status.from_call(error)
        assert status is not None and error_info(status).metadata["error_id"] == error_id
        assert_handler_trailers(error)


async def test_our_details_replace_a_details_trailer_the_handler_set(served: ServedApp) -> None:
    for error in await failures(served, "stale-details"):
        values = [v for k, v in error.trailing_metadata() or () if k == "grpc-status-details-bin"]
        assert len(values) == 1
        status = rpc_status.from_call(error)  # would raise on the stale OK/"stale" status
        assert status is not None and error_info(status).reason == "FILE_GONE"
        assert_handler_trailers(error)


def test_status_refuses_ok_and_details_that_are_not_protobuf_messages() -> None:
    with pytest.raises(ValueError, match="OK"):
        Status(grpc.StatusCode.OK, "fine")
    with pytest.raises(TypeError, match="protobuf messages"):
        Status(grpc.StatusCode.ABORTED, "x", details=["retry later"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"grpc\.StatusCode"):
        Status(10, "x")  # type: ignore[arg-type]
    assert str(Status(grpc.StatusCode.ABORTED, "busy")) == "ABORTED: busy"
