"""Bad input gets a clear status and the server keeps serving."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.protobuf import message as protobuf_message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demo.files.v1 import files_pb2
from examples.files import create_app
from server import App, ServerSettings
from server.app import RunningServer
from server.testing import serve_for_test
from streamtest.v1 import stream_test_pb2, stream_test_pb2_grpc
from tests.server.helpers import assert_nothing_internal, bad_request, error_info, rich_status
from tests.server.ticks import ticks_app

TICKS = "/streamtest.v1.TickService/Ticks"
ECHO = "/streamtest.v1.TickService/Echo"
LIMIT = 16 * 1024

_SYNC_ERRORS: list[grpc.RpcError] = []  # the sync client's failed calls (hypothesis tests), see _code


@pytest.fixture(autouse=True)
def nothing_internal_on_the_wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[grpc.RpcError]]:
    """Collects every failed call of each test here and checks what the server sent back: no
    traceback, exception class, file path or library version in a status message or trailer."""
    seen: list[grpc.RpcError] = []
    original = grpc.aio.AioRpcError.__init__

    def recording(self: grpc.aio.AioRpcError, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        seen.append(self)

    monkeypatch.setattr(grpc.aio.AioRpcError, "__init__", recording)
    _SYNC_ERRORS.clear()
    yield seen
    assert_nothing_internal([*seen, *_SYNC_ERRORS])


async def _status_of(call: grpc.aio.Call) -> grpc.StatusCode:
    try:
        async for _ in call:  # type: ignore[attr-defined]
            pass
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"\xff\xff\xff\xff\xff\xff", ""),  # not protobuf at all
        (b"\x22\x05ab", ""),  # name: length 5, 2 bytes follow (truncated)
        (b"\x22\x02\xc3\x28", ""),  # name with invalid UTF-8
        (stream_test_pb2.EchoQuery(text="a message of another type").SerializeToString(), "count"),
    ],
    ids=["random-bytes", "truncated", "bad-utf8", "wrong-message-type"],
)
async def test_undecodable_requests_are_invalid_argument(body: bytes, field: str) -> None:
    async with serve_for_test(ticks_app()) as served:
        raw = served.channel.unary_stream(TICKS)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            [m async for m in raw(body)]
        assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        status = rich_status(failed.value)
        assert error_info(status).reason == "MALFORMED_REQUEST"
        if field:
            assert [v.field for v in bad_request(status).field_violations] == [field]
        stub = served.stub(stream_test_pb2_grpc.TickServiceStub)
        assert [t.seq async for t in stub.Ticks(stream_test_pb2.TicksCommand(count=2, mode="count"))] == [
            1,
            2,
        ]


async def test_invalid_field_value_is_invalid_argument_with_the_field_named() -> None:
    async with serve_for_test(ticks_app()) as served:
        stub = served.stub(stream_test_pb2_grpc.TickServiceStub)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.Echo(stream_test_pb2.EchoQuery(text=""))
    assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    violations = bad_request(rich_status(failed.value)).field_violations
    assert [(v.field, v.description) for v in violations] == [("text", "must not be empty")]


async def test_oversized_request_is_resource_exhausted_and_the_server_keeps_serving() -> None:
    async with serve_for_test(ticks_app(settings=ServerSettings(max_receive_message_bytes=LIMIT))) as served:
        stub = served.stub(stream_test_pb2_grpc.TickServiceStub)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.Echo(stream_test_pb2.EchoQuery(text="x" * (LIMIT + 1)))
        assert failed.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await stub.Echo(stream_test_pb2.EchoQuery(text="small"))).text == "small"


async def test_unknown_method_and_service_are_unimplemented() -> None:
    async with serve_for_test(ticks_app()) as served:
        for path in ("/streamtest.v1.TickService/Nope", "/nope.v1.Nothing/Ticks"):
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await served.channel.unary_unary(path)(b"")
            assert failed.value.code() is grpc.StatusCode.UNIMPLEMENTED


# --- property-based: generated messages and byte strings at every RPC --------------------------------

DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class ThreadServer:
    """An app served from a background event loop, so hypothesis can drive it with a sync client."""

    def __init__(self, make_app: Callable[[], App]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def start() -> RunningServer:
            return await make_app().start()

        self.running: RunningServer = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def thread_server() -> Iterator[ThreadServer]:
    server = ThreadServer(
        lambda: ticks_app(settings=ServerSettings(max_receive_message_bytes=LIMIT, grace=0.5))
    )
    yield server
    server.close()


@pytest.fixture(scope="module")
def channel(thread_server: ThreadServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(thread_server.running.address) as channel:
        yield channel


def _ticks_messages() -> st.SearchStrategy[bytes]:
    return st.builds(
        stream_test_pb2.TicksCommand,
        count=st.integers(min_value=-(2**31), max_value=2**31 - 1),
        payload_bytes=st.integers(min_value=-(2**31), max_value=2**31 - 1),
        mode=st.sampled_from(["count", "", "unknown", "event"]),
        name=st.text(max_size=64),
    ).map(lambda m: m.SerializeToString())


def _echo_messages() -> st.SearchStrategy[bytes]:
    return st.builds(stream_test_pb2.EchoQuery, text=st.text(max_size=LIMIT * 2)).map(
        lambda m: m.SerializeToString()
    )


def _code(error: grpc.RpcError) -> grpc.StatusCode:
    _SYNC_ERRORS.append(error)
    code = error.code()  # type: ignore[attr-defined]
    assert isinstance(code, grpc.StatusCode)
    return code


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=st.one_of(st.binary(max_size=256), _ticks_messages()))
def test_generated_input_to_the_streaming_rpc_gets_documented_statuses(
    channel: grpc.Channel, body: bytes
) -> None:
    call = channel.unary_stream(TICKS)(body, timeout=10)
    code = grpc.StatusCode.OK
    try:
        for _ in call:
            pass
    except grpc.RpcError as error:
        code = _code(error)
    assert code in DOCUMENTED, (code, body)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=st.one_of(st.binary(max_size=256), _echo_messages()))
def test_generated_input_to_the_unary_rpc_gets_documented_statuses(
    channel: grpc.Channel, body: bytes
) -> None:
    code = grpc.StatusCode.OK
    try:
        reply = channel.unary_unary(ECHO)(body, timeout=2)
        stream_test_pb2.EchoReply.FromString(reply)
    except grpc.RpcError as error:
        code = _code(error)
    except protobuf_message.DecodeError as error:  # pragma: no cover - the reply must always decode
        raise AssertionError("the server sent a reply that is not an EchoReply") from error
    assert code in DOCUMENTED, (code, body)


def test_after_the_generated_input_the_server_is_healthy(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest(), timeout=2).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    ticks = channel.unary_stream(TICKS)(
        stream_test_pb2.TicksCommand(count=3, mode="count").SerializeToString()
    )
    assert [stream_test_pb2.Tick.FromString(t).seq for t in ticks] == [1, 2, 3]


async def test_oversized_metadata_is_refused_and_the_server_keeps_serving() -> None:
    settings = ServerSettings(max_metadata_bytes=1024, grace=0.5)
    async with serve_for_test(ticks_app(settings=settings)) as served:
        stub = served.stub(stream_test_pb2_grpc.TickServiceStub)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.Echo(stream_test_pb2.EchoQuery(text="hi"), metadata=[("x-big", "x" * 4096)], timeout=5)
        assert failed.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, failed.value
        reply = await stub.Echo(stream_test_pb2.EchoQuery(text="small"), metadata=[("x-ok", "y" * 100)])
        assert reply.text == "small"


# --- the same at every RPC of the demo service --------------------------------------------------------

DEMO_RPCS = {  # method -> (server-streaming, statuses documented for it beyond DOCUMENTED)
    "UploadFile": (False, set()),
    "ListFiles": (False, set()),
    "GetFileStatus": (False, {grpc.StatusCode.NOT_FOUND}),
    "ProcessFiles": (True, set()),
    # endless by design: a valid request streams until the client leaves, here the test's deadline
    "WatchFileEvents": (True, {grpc.StatusCode.DEADLINE_EXCEEDED}),
}


@pytest.fixture(scope="module")
def demo_channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    data_dir = tmp_path_factory.mktemp("demo-data")
    server = ThreadServer(lambda: create_app(data_dir=data_dir, max_upload_bytes=LIMIT))
    with grpc.insecure_channel(server.running.address) as channel:
        yield channel
    server.close()


def _demo_bodies() -> st.SearchStrategy[bytes]:
    ids = st.lists(st.text(max_size=300), max_size=5)
    return st.one_of(
        st.binary(max_size=256),
        ids.map(lambda file_ids: files_pb2.ProcessFilesCommand(file_ids=file_ids).SerializeToString()),
        st.builds(
            files_pb2.UploadFileCommand, name=st.text(max_size=64), content=st.binary(max_size=2048)
        ).map(lambda m: m.SerializeToString()),
        st.builds(files_pb2.GetFileStatusQuery, file_id=st.text(max_size=64)).map(
            lambda m: m.SerializeToString()
        ),
    )


@pytest.mark.parametrize("method", sorted(DEMO_RPCS))
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=_demo_bodies())
def test_generated_input_to_every_demo_rpc_gets_documented_statuses(
    demo_channel: grpc.Channel, method: str, body: bytes
) -> None:
    streaming, extra = DEMO_RPCS[method]
    path = f"/demo.files.v1.FileService/{method}"
    code = grpc.StatusCode.OK
    try:
        if streaming:
            for _ in demo_channel.unary_stream(path)(body, timeout=0.2 if method == "WatchFileEvents" else 5):
                pass
        else:
            demo_channel.unary_unary(path)(body, timeout=5)
    except grpc.RpcError as error:
        code = _code(error)
    assert code in DOCUMENTED | extra, (method, code, body)


def test_after_the_generated_input_the_demo_is_healthy(demo_channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(demo_channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest(), timeout=2).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    listed = files_pb2.FileList.FromString(
        demo_channel.unary_unary("/demo.files.v1.FileService/ListFiles")(b"")
    )
    assert all(f.file_id.startswith("f_") for f in listed.files)
