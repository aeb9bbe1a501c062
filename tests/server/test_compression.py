"""Responses are compressed as the server's default (``--compression``) or the handler's choice
(``current_rpc().set_compression``) says, checked on the wire: the gRPC message's compressed flag
and its bytes, read by a relay between client and server (tests/server/wire_tap.py)."""

from __future__ import annotations

import gzip
import typing
import zlib
from datetime import UTC, datetime

import grpc
import pytest
from sample.files.v1 import files_pb2, files_pb2_grpc

import cqrs
from cqrs.requests.request_handler import StreamingRequestHandler
from server import App, ServerSettings, current_rpc
from server.cli import apply_settings, parse_args
from tests.server.helpers import app_with
from tests.server.sample import FileProcessedResult, FileStatus, GetFileStatusQuery, ProcessFilesCommand
from tests.server.wire_tap import WireMessage, wire_tap

FILE_ID = "f" * 4000  # compresses to a few dozen bytes
DECOMPRESS = {"gzip": gzip.decompress, "deflate": zlib.decompress}


async def choose(mode: str, *, unary: bool) -> None:
    """What the handler asks of this RPC: ``default`` nothing, else an algorithm for it; ``plain-first``
    gzip with the first message sent uncompressed."""
    rpc = current_rpc()
    if mode == "default":
        return
    rpc.set_compression("gzip" if mode == "plain-first" else mode)
    if mode == "plain-first":
        rpc.disable_next_message_compression()
    if unary:  # a unary response's headers must go out first to carry the choice (RpcContext.set_compression)
        await rpc.send_initial_metadata()


class ThreeResults(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        await choose(request.file_ids[0], unary=False)
        for index in range(1, 4):
            yield FileProcessedResult(
                file_id=FILE_ID, status="completed", processed_at=datetime.now(UTC), index=index
            )


class OneStatus(cqrs.RequestHandler[GetFileStatusQuery, FileStatus]):
    async def handle(self, request: GetFileStatusQuery) -> FileStatus:
        await choose(request.file_id, unary=True)
        return FileStatus(file_id=FILE_ID, status="completed")


async def wire_messages(compression: str, mode: str) -> list[WireMessage]:
    """The response messages of one unary and one streaming RPC as the server sent them."""
    app: App = app_with(ThreeResults, unary_handler=OneStatus)
    app.settings = ServerSettings(compression=compression)
    async with (
        app.serve("127.0.0.1:0") as running,
        wire_tap(running.address) as tap,
        grpc.aio.insecure_channel(tap.address) as channel,
    ):
        stub = files_pb2_grpc.FileServiceStub(channel)
        reply = await stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id=mode))
        results = [r async for r in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=[mode]))]
    # what the client got is intact, whatever travelled
    assert reply.file_id == FILE_ID
    assert [(r.file_id, r.index) for r in results] == [(FILE_ID, 1), (FILE_ID, 2), (FILE_ID, 3)]
    messages = tap.messages()
    assert len(messages) == 4, messages
    return messages


def assert_sent(message: WireMessage, algorithm: str) -> None:
    """``message`` travelled compressed with ``algorithm`` ("none": as plain protobuf bytes)."""
    assert message.compressed is (algorithm != "none"), message
    body = message.body if algorithm == "none" else DECOMPRESS[algorithm](message.body)
    assert FILE_ID.encode() in body
    if algorithm != "none":
        assert len(message.body) < len(FILE_ID) // 10


async def test_without_a_setting_responses_travel_uncompressed() -> None:
    for message in await wire_messages("none", "default"):
        assert_sent(message, "none")


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
async def test_the_server_default_compresses_unary_and_streamed_responses(algorithm: str) -> None:
    for message in await wire_messages(algorithm, "default"):
        assert_sent(message, algorithm)


@pytest.mark.parametrize(
    ("server_default", "chosen"),
    [("none", "gzip"), ("none", "deflate"), ("gzip", "none"), ("gzip", "deflate")],
)
async def test_a_handler_chooses_the_compression_of_its_rpc(server_default: str, chosen: str) -> None:
    for message in await wire_messages(server_default, chosen):
        assert_sent(message, chosen)


async def test_a_handler_can_send_its_next_message_uncompressed() -> None:
    unary, first, *rest = await wire_messages("none", "plain-first")
    assert_sent(unary, "none")  # its one message was the next one
    assert_sent(first, "none")
    for message in rest:
        assert_sent(message, "gzip")


def test_the_compression_flag_and_variable_set_the_server_default(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse_args(["--app", "m:app", "--compression", "gzip"])
    assert apply_settings(ServerSettings(), args).compression == "gzip"
    monkeypatch.setenv("CQRS_GRPC_COMPRESSION", "deflate")
    assert apply_settings(ServerSettings(), parse_args(["--app", "m:app"])).compression == "deflate"
    monkeypatch.setenv("CQRS_GRPC_COMPRESSION", "brotli")
    with pytest.raises(SystemExit):
        parse_args(["--app", "m:app"])
    with pytest.raises(ValueError, match="unknown compression 'brotli'"):
        ServerSettings(compression="brotli")
