"""Exceptions become statuses with rich details; nothing internal reaches the wire."""

from __future__ import annotations

import logging
import typing
from datetime import UTC, datetime

import grpc
import pytest
from sample.files.v1 import files_pb2, files_pb2_grpc

import cqrs
from cqrs.requests.request_handler import StreamingRequestHandler
from server.errors import ErrorMapper
from server.testing import serve_for_test
from streamtest.v1 import stream_test_pb2, stream_test_pb2_grpc
from tests.server.helpers import app_with, bad_request, error_info, rich_status, trailer
from tests.server.sample import FileProcessedResult, ProcessFilesCommand
from tests.server.ticks import ticks_app


async def test_validation_error_before_the_first_message_is_invalid_argument_with_field_violations(
    demo_stub: files_pb2_grpc.FileServiceStub,
) -> None:
    call = demo_stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["ok", "", "x" * 300]))
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        [r async for r in call]
    error = failed.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "some file ids are invalid"
    status = rich_status(error)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert error_info(status).reason == "INVALID_REQUEST"
    violations = [(v.field, v.description) for v in bad_request(status).field_violations]
    assert violations == [
        ("file_ids[1]", "must not be empty"),
        ("file_ids[2]", "is 300 characters long; at most 256"),
    ]


class FailsAfter(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    """Yields one result per id, then raises the error its first id names."""

    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        kind, *ids = request.file_ids
        for file_id in ids:
            yield FileProcessedResult(file_id=file_id, status="completed", processed_at=datetime.now(UTC))
        if kind == "not-found":
            raise cqrs.NotFoundError("file 'zz' is gone", reason="FILE_GONE", metadata={"file_id": "zz"})
        if kind == "custom":
            raise QuotaSpent("quota of tenant acme at /srv/quotas/acme.db is spent")
        if kind == "grpc-usage":  # e.g. a downstream grpc.aio channel used after it was closed
            raise grpc.aio.UsageError("secret: Channel is closed.")
        if kind == "own-sink":  # a handler that streamed into a sink of its own, which hit grpc
            raise cqrs.SinkError("item", print) from grpc.aio.UsageError("secret: Channel is closed.")
        raise RuntimeError("secret token abc123 at /etc/app/config.py line 3")


class QuotaSpent(Exception):
    """The caller's quota is spent."""


@pytest.mark.parametrize("k", [0, 2])
async def test_domain_error_after_k_messages_delivers_them_then_the_mapped_status(k: int) -> None:
    async with serve_for_test(app_with(FailsAfter)) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        ids = [f"f{n}" for n in range(k)]
        call = stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["not-found", *ids]))
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            async for result in call:
                received.append(result.file_id)
    assert received == ids
    assert failed.value.code() is grpc.StatusCode.NOT_FOUND
    assert failed.value.details() == "file 'zz' is gone"
    info = error_info(rich_status(failed.value))
    assert (info.reason, info.domain, dict(info.metadata)) == ("FILE_GONE", "cqrs-grpc", {"file_id": "zz"})


async def test_unexpected_error_is_internal_with_an_error_id_and_no_internal_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with serve_for_test(app_with(FailsAfter)) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        call = stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["boom", "a"]))
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            async for result in call:
                received.append(result.file_id)
        # the server keeps serving: the next call gets its own outcome
        with pytest.raises(grpc.aio.AioRpcError) as next_call:
            [r async for r in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["not-found"]))]
        assert next_call.value.code() is grpc.StatusCode.NOT_FOUND
    error = failed.value
    assert received == ["a"]
    assert error.code() is grpc.StatusCode.INTERNAL
    error_id = trailer(error, "error-id")
    assert isinstance(error_id, str) and len(error_id) == 32
    assert error.details() == f"internal error (error id {error_id})"
    wire = repr(error.trailing_metadata()) + (error.details() or "")
    for leaked in ("secret", "abc123", "/etc/app", "RuntimeError", "Traceback", "config.py"):
        assert leaked not in wire
    assert error_info(rich_status(error)).metadata["error_id"] == error_id
    logged = [r for r in caplog.records if r.name == "server.errors"]
    assert len(logged) == 1
    assert error_id in logged[0].getMessage()
    assert logged[0].exc_info is not None and "abc123" in str(logged[0].exc_info[1])


@pytest.mark.parametrize("kind", ["grpc-usage", "own-sink"])
async def test_a_grpc_library_error_from_the_handler_is_internal_not_a_quietly_cut_stream(kind: str) -> None:
    # grpc.aio's own error types are also what a write raises when the call ended under it; only a
    # failed write of the server's own sink may be taken for a client that went away, never the
    # handler's exception (nor a SinkError of a sink the handler streamed into itself)
    async with serve_for_test(app_with(FailsAfter)) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        call = stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=[kind, "a"]))
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            async for result in call:
                received.append(result.file_id)
    assert received == ["a"]
    assert failed.value.code() is grpc.StatusCode.INTERNAL
    assert "secret" not in (failed.value.details() or "")


class BadSecondResult(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    """Yields a good result, then one whose ``index`` cannot be an int32 (an application bug)."""

    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        now = datetime.now(UTC)
        yield FileProcessedResult(file_id="a", status="completed", processed_at=now)
        yield FileProcessedResult(file_id="b", status="completed", processed_at=now, index=2**40)


async def test_a_response_that_cannot_be_encoded_is_internal_after_the_messages_before_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # it fails inside the server's sink, beside grpc's write: it must not pass for a client that left
    caplog.set_level(logging.INFO)
    async with serve_for_test(app_with(BadSecondResult)) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            async for result in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["x"])):
                received.append(result.file_id)
    assert received == ["a"]
    assert failed.value.code() is grpc.StatusCode.INTERNAL
    assert "index" not in (failed.value.details() or "")
    [line] = [r for r in caplog.records if r.name == "server.rpc"]
    assert (line.rpc_status, line.rpc_messages) == ("INTERNAL", 1)  # type: ignore[attr-defined]
    [bug] = [r for r in caplog.records if r.name == "server.errors"]
    assert bug.exc_info is not None and "index" in str(bug.exc_info[1])  # logged as what encode raised


async def test_registered_exception_maps_to_its_code_without_its_text() -> None:
    app = app_with(FailsAfter)
    app.map_error(QuotaSpent, grpc.StatusCode.RESOURCE_EXHAUSTED)
    async with serve_for_test(app) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            [r async for r in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["custom"]))]
    assert failed.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert failed.value.details() == "The caller's quota is spent."
    assert error_info(rich_status(failed.value)).reason == "QUOTA_SPENT"


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xff\xff\xff\xff",  # not protobuf
        b"\x0a\x05ab",  # field 1, length 5, only 2 bytes: truncated
        b"\x0a\x02\xc3\x28",  # field 1 (string) with invalid UTF-8
    ],
)
async def test_undecodable_request_is_invalid_argument_and_the_server_keeps_serving(
    body: bytes, demo: typing.Any
) -> None:
    raw = demo.channel.unary_stream("/sample.files.v1.FileService/ProcessFiles")
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        [m async for m in raw(body)]
    assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(rich_status(failed.value)).reason == "MALFORMED_REQUEST"
    stub = demo.stub(files_pb2_grpc.FileServiceStub)
    results = [r async for r in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["a"]))]
    assert [r.file_id for r in results] == ["a"]


async def test_unknown_file_status_is_not_found_with_error_info(
    demo_stub: files_pb2_grpc.FileServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await demo_stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id="nope"))
    assert failed.value.code() is grpc.StatusCode.NOT_FOUND
    info = error_info(rich_status(failed.value))
    assert (info.reason, dict(info.metadata)) == ("FILE_NOT_FOUND", {"file_id": "nope"})


async def test_unknown_method_is_unimplemented(demo: typing.Any) -> None:
    raw = demo.channel.unary_unary("/sample.files.v1.FileService/NoSuchMethod")
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await raw(b"")
    assert failed.value.code() is grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("mode", ["abort", "abort-then-yield"])
async def test_a_handler_that_aborts_itself_keeps_its_status_and_is_not_logged_as_a_bug(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    # "abort-then-yield" swallows the AbortError and yields once more: grpc refuses that write, and
    # it is neither the handler's status nor a counted message
    caplog.set_level(logging.INFO)
    async with serve_for_test(ticks_app()) as served:
        stub = served.stub(stream_test_pb2_grpc.TickServiceStub)
        call = stub.Ticks(stream_test_pb2.TicksCommand(count=2, mode=mode, name="zz"))
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            async for tick in call:
                received.append(tick.seq)
    assert received == [1, 2]
    assert failed.value.code() is grpc.StatusCode.NOT_FOUND
    assert failed.value.details() == "no ticks named 'zz'"
    assert not [r for r in caplog.records if r.name == "server.errors"]
    [line] = [r for r in caplog.records if r.name == "server.rpc"]
    assert (line.rpc_status, line.rpc_messages) == ("NOT_FOUND", 2)  # type: ignore[attr-defined]


class Blank(Exception):
    """ """


def test_a_mapped_exception_with_a_blank_docstring_gets_its_class_name_as_message() -> None:
    mapper = ErrorMapper()
    mapper.register(Blank, grpc.StatusCode.ABORTED)
    outcome = mapper.outcome(Blank("internal detail"), method="/x.Y/Z")
    assert (outcome.code, outcome.message) == (grpc.StatusCode.ABORTED, "Blank")
