"""Nothing internal on the wire: unexpected errors anywhere (application RPCs, health, reflection,
undecodable bytes, refused tokens) reach the client without tracebacks, exception class names, file
system paths or library versions. The bad-input tests run the same check on each of their calls
(``test_bad_input.py::nothing_internal_on_the_wire``)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from sample.files.v1 import files_pb2, files_pb2_grpc

import cqrs
from server import ServerSettings
from server.testing import serve_for_test
from tests.server.helpers import app_with, assert_nothing_internal, internal_leaks, wire_texts
from tests.server.sample import FileStatus, GetFileStatusQuery
from tests.server.test_errors import FailsAfter, QuotaSpent


class ExplodingStatus(cqrs.RequestHandler[GetFileStatusQuery, FileStatus]):
    """A unary handler whose failure text holds everything that must not leak."""

    async def handle(self, request: GetFileStatusQuery) -> FileStatus:
        raise OSError(2, "No such file or directory: '/srv/app/secrets.py' (grpcio 1.85.3)")


async def _failure(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        result = await call  # type: ignore[misc]
        if hasattr(result, "__aiter__"):  # pragma: no cover - streams are consumed by the caller
            [_ async for _ in result]
    return failed.value


async def _stream_failure(call: grpc.aio.UnaryStreamCall) -> grpc.aio.AioRpcError:  # type: ignore[type-arg]
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        [_ async for _ in call]
    return failed.value


async def test_unexpected_errors_of_every_kind_show_nothing_internal(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("ops-token-0123456789abcdef ops streamtest.*\n")
    app = app_with(FailsAfter, unary_handler=ExplodingStatus)
    app.map_error(QuotaSpent, grpc.StatusCode.RESOURCE_EXHAUSTED)
    auth = [("authorization", "Bearer ops-token-0123456789abcdef")]
    errors: list[grpc.aio.AioRpcError] = []
    async with serve_for_test(app) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        for kind in ("boom", "custom", "not-found"):
            call = stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=[kind, "a"]))
            errors.append(await _stream_failure(call))
        errors.append(await _failure(stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id="x"))))
        for path, body in (
            (
                "/grpc.health.v1.Health/Check",
                b"\xff\xff\xff",
            ),  # undecodable, to a handler we do not decode for
            ("/grpc.health.v1.Health/Check", b"\x0a\x03nope"),  # an unknown service name
            ("/sample.files.v1.FileService/GetFileStatus", b"\x0a\x05ab"),
            ("/no.such.Service/Method", b""),
        ):
            errors.append(await _failure(served.channel.unary_unary(path)(body, timeout=5)))
    settings = ServerSettings(grace=0.5, auth_tokens_file=str(tokens))
    app = app_with(FailsAfter, unary_handler=ExplodingStatus)
    app.settings = settings
    async with serve_for_test(app) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        for metadata in ([], [("authorization", "Bearer nope")], auth):
            errors.append(
                await _failure(
                    stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id="x"), metadata=metadata)
                )
            )
    assert {e.code() for e in errors} >= {
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    }
    assert_nothing_internal(errors)


async def test_the_check_catches_what_grpc_itself_would_send() -> None:
    """grpc's own default for an exception in a servicer, as a plain grpc.aio server sends it."""

    async def explode(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        raise RuntimeError("cannot open /srv/app/data.db")

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(explode)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("x.S", {"M": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            error = await _failure(channel.unary_unary("/x.S/M")(b"", timeout=5))
    finally:
        await server.stop(None)
    leaks = internal_leaks(wire_texts(error.details(), error.trailing_metadata() or ()))
    assert any(leak.startswith("exception class") for leak in leaks), error.details()
    with pytest.raises(AssertionError, match="internal details on the wire"):
        assert_nothing_internal([error])
