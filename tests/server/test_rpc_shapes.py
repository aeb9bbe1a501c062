"""Every RPC shape through the mediator, and binding per method (tests/protos/shapes/v1/shapes.proto)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2
from shapes.v1 import shapes_pb2, shapes_pb2_grpc

import cqrs
from cqrs.requests import bootstrap
from server import App, StartupError
from server.testing import serve_for_test


class Chunk(cqrs.Request):
    data: bytes = b""


class Total(cqrs.Response):
    size: int
    chunks: int


class EchoPing(cqrs.Request):
    n: int = 0


class OncePing(cqrs.Request):
    n: int = 0


class TwicePing(cqrs.Request):
    n: int = 0


class Pong(cqrs.Response):
    n: int


class ChunkSeen(cqrs.DomainEvent):
    size: int


class Probe:
    def __init__(self) -> None:
        self.log: list[Any] = []
        self.start_task: asyncio.Task[Any] | None = None
        self.close_task: asyncio.Task[Any] | None = None
        self.closed = asyncio.Event()
        self.returned: list[int] = []


class SumHandler(cqrs.ClientStreamingRequestHandler[Chunk, Total]):
    def __init__(self, probe: Probe) -> None:
        self._probe = probe

    async def handle(self, requests: AsyncIterator[Chunk]) -> Total:
        self._probe.start_task = asyncio.current_task()
        size = chunks = 0
        try:
            async for chunk in requests:
                self._probe.log.append(("read", len(chunk.data)))
                self.add_event(ChunkSeen(size=len(chunk.data)))
                size, chunks = size + len(chunk.data), chunks + 1
            self._probe.returned.append(chunks)
            return Total(size=size, chunks=chunks)
        finally:
            self._probe.close_task = asyncio.current_task()
            self._probe.closed.set()


class EchoHandler(cqrs.BidiStreamingRequestHandler[EchoPing, Pong]):
    def __init__(self, probe: Probe) -> None:
        self._probe = probe

    async def handle(self, requests: AsyncIterator[EchoPing]) -> AsyncIterator[Pong]:
        self._probe.start_task = asyncio.current_task()
        try:
            async for ping in requests:
                self._probe.log.append(("ping", ping.n))
                yield Pong(n=ping.n * 10)
        finally:
            self._probe.close_task = asyncio.current_task()
            self._probe.closed.set()


class OnceHandler(cqrs.RequestHandler[OncePing, Pong]):
    async def handle(self, request: OncePing) -> Pong:
        return Pong(n=request.n + 1)


class TwiceHandler(cqrs.StreamingRequestHandler[TwicePing, Pong]):
    async def handle(self, request: TwicePing) -> AsyncIterator[Pong]:
        yield Pong(n=request.n)
        yield Pong(n=request.n)


class RecordChunk(cqrs.EventHandler[ChunkSeen]):
    def __init__(self, probe: Probe) -> None:
        self._probe = probe

    async def handle(self, event: ChunkSeen) -> None:
        self._probe.log.append(("event", event.size))


BINDINGS: dict[str, type[cqrs.Request] | None] = {
    "shapes.v1.Shapes/Echo": EchoPing,
    "shapes.v1.Shapes/Once": OncePing,
    "shapes.v1.Shapes/Twice": TwicePing,
    "shapes.v1.Shapes/Later": None,
}


def shapes_app(probe: Probe, echo: type[Any] = EchoHandler) -> App:
    container = cqrs.Container()
    container.register_instance(Probe, probe)

    def bind_unary(m: cqrs.RequestMap) -> None:
        m.bind(Chunk, SumHandler)
        m.bind(OncePing, OnceHandler)

    def bind_streams(m: cqrs.RequestMap) -> None:
        m.bind(EchoPing, echo)
        m.bind(TwicePing, TwiceHandler)

    return App(
        mediator=bootstrap.bootstrap(
            di_container=container,
            commands_mapper=bind_unary,
            domain_events_mapper=lambda m: m.bind(ChunkSeen, RecordChunk),
        ),
        streaming_mediator=bootstrap.bootstrap_streaming(
            di_container=container, commands_mapper=bind_streams
        ),
    )


def served_shapes(probe: Probe) -> App:
    app = shapes_app(probe)
    app.add_services(shapes_pb2, bindings=BINDINGS, services=["Shapes"])
    return app


async def test_client_streaming_reads_each_message_with_its_events_before_the_next() -> None:
    probe = Probe()

    async def chunks() -> AsyncIterator[shapes_pb2.Chunk]:
        for size in (1, 2, 3):
            yield shapes_pb2.Chunk(data=b"x" * size)

    async with serve_for_test(served_shapes(probe)) as served:
        total = await served.stub(shapes_pb2_grpc.ShapesStub).Sum(chunks(), timeout=10)
    assert (total.size, total.chunks) == (6, 3)
    assert probe.log == [("read", 1), ("event", 1), ("read", 2), ("event", 2), ("read", 3), ("event", 3)]


async def test_bidi_answers_each_message_before_the_next_one_is_sent() -> None:
    probe = Probe()
    async with serve_for_test(served_shapes(probe)) as served:
        call = served.stub(shapes_pb2_grpc.ShapesStub).Echo(timeout=10)
        for n in (1, 2, 3):
            await call.write(shapes_pb2.Ping(n=n))
            assert (await call.read()).n == n * 10
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF
        assert await call.code() is grpc.StatusCode.OK
    assert probe.log == [("ping", 1), ("ping", 2), ("ping", 3)]


async def test_cancelling_a_bidi_call_closes_the_handler_in_the_rpc_task() -> None:
    probe = Probe()
    async with serve_for_test(served_shapes(probe)) as served:
        call = served.stub(shapes_pb2_grpc.ShapesStub).Echo()
        await call.write(shapes_pb2.Ping(n=1))
        assert (await call.read()).n == 10
        call.cancel()
        await asyncio.wait_for(probe.closed.wait(), 5)
        assert probe.close_task is probe.start_task is not None
        once = await served.stub(shapes_pb2_grpc.ShapesStub).Once(shapes_pb2.Ping(n=1))
        assert once.n == 2  # the server goes on serving


async def test_a_deadline_while_the_handler_waits_for_the_next_message_closes_it() -> None:
    probe = Probe()

    async def one_then_silence() -> AsyncIterator[shapes_pb2.Chunk]:
        yield shapes_pb2.Chunk(data=b"x")
        await asyncio.sleep(30)

    async with serve_for_test(served_shapes(probe)) as served:
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await served.stub(shapes_pb2_grpc.ShapesStub).Sum(one_then_silence(), timeout=0.3)
        assert ended.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.wait_for(probe.closed.wait(), 5)
        assert probe.close_task is probe.start_task is not None
        assert probe.log == [("read", 1), ("event", 1)]


@pytest.mark.parametrize("attempt", range(5))
async def test_a_client_cancel_mid_stream_is_not_taken_for_the_end_of_the_stream(
    attempt: int, caplog: pytest.LogCaptureFixture
) -> None:
    # grpc ends the request iterator alike for a half-close and a cancel: the handler must see
    # the cancellation, never a finished upload it would commit
    caplog.set_level("INFO", logger="server.rpc")
    probe = Probe()
    async with serve_for_test(served_shapes(probe)) as served:
        call = served.stub(shapes_pb2_grpc.ShapesStub).Sum()
        await call.write(shapes_pb2.Chunk(data=b"x"))
        await asyncio.wait_for(_until(lambda: ("read", 1) in probe.log), 5)
        call.cancel()
        await asyncio.wait_for(probe.closed.wait(), 5)
    assert probe.returned == []
    assert probe.close_task is probe.start_task is not None
    [line] = [r.getMessage() for r in caplog.records if "/shapes.v1.Shapes/Sum" in r.getMessage()]
    assert "status=CANCELLED" in line


async def _until(condition: Any) -> None:
    while not condition():  # noqa: ASYNC110 - the handler sets no event for this
        await asyncio.sleep(0.005)


async def test_a_malformed_message_in_a_request_stream_is_invalid_argument() -> None:
    async with serve_for_test(served_shapes(Probe())) as served:
        channel: Any = served.channel  # raw bytes, no serializer
        sum_call = channel.stream_unary("/shapes.v1.Shapes/Sum")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await sum_call(
                iter([shapes_pb2.Chunk(data=b"ok").SerializeToString(), b"\xff\xff\xff"]), timeout=10
            )
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid shapes.v1.Chunk" in (refused.value.details() or "")


async def test_server_and_unary_rpcs_of_the_same_service_are_served_too() -> None:
    async with serve_for_test(served_shapes(Probe())) as served:
        stub = served.stub(shapes_pb2_grpc.ShapesStub)
        assert (await stub.Once(shapes_pb2.Ping(n=4))).n == 5
        assert [p.n async for p in stub.Twice(shapes_pb2.Ping(n=7))] == [7, 7]


async def test_an_rpc_left_unbound_on_purpose_answers_unimplemented_saying_so() -> None:
    async with serve_for_test(served_shapes(Probe())) as served:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await served.stub(shapes_pb2_grpc.ShapesStub).Later(empty_pb2.Empty())
        assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert refused.value.details() == "shapes.v1.Shapes/Later is not served by this server"
        with pytest.raises(grpc.aio.AioRpcError) as other:  # a service not picked is not served
            await served.stub(shapes_pb2_grpc.OtherStub).Nothing(empty_pb2.Empty())
        assert other.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_rpcs_sharing_an_input_message_are_bound_only_explicitly_and_each_is_named() -> None:
    class Ping(cqrs.Request):  # named as the message: name matching alone would pick it for all three
        n: int = 0

    class PingHandler(cqrs.RequestHandler[Ping, Pong]):
        async def handle(self, request: Ping) -> Pong:
            return Pong(n=0)

    app = shapes_app(Probe())
    assert app.mediator is not None
    app.mediator.request_map.bind(Ping, PingHandler)
    with pytest.raises(StartupError) as refused:
        app.add_services(shapes_pb2, bindings={"shapes.v1.Shapes/Later": None}, services=["Shapes"])
    problems = "\n".join(refused.value.problems)
    for rpc, others in [
        ("Echo", "rpc shapes.v1.Shapes/Once, rpc shapes.v1.Shapes/Twice"),
        ("Once", "rpc shapes.v1.Shapes/Echo, rpc shapes.v1.Shapes/Twice"),
        ("Twice", "rpc shapes.v1.Shapes/Echo, rpc shapes.v1.Shapes/Once"),
    ]:
        assert f"rpc shapes.v1.Shapes/{rpc} takes shapes.v1.Ping, as {others} also take" in problems
        assert f'bindings={{"shapes.v1.Shapes/{rpc}": YourRequest}}' in problems


def test_a_service_none_of_whose_rpcs_is_bound_points_at_picking_services() -> None:
    with pytest.raises(StartupError) as refused:
        shapes_app(Probe()).add_services(shapes_pb2, bindings=BINDINGS)
    [problem] = [p for p in refused.value.problems if p.startswith("service ")]
    assert "service shapes.v1.Other has none of its RPCs bound" in problem
    assert "add_services(..., services=['shapes.v1.Shapes'])" in problem
    with pytest.raises(ValueError, match=r"'Nope', which is not among shapes\.v1\.Shapes, shapes\.v1\.Other"):
        shapes_app(Probe()).add_services(shapes_pb2, services=["Nope"])


def test_a_handler_of_the_wrong_shape_is_refused_naming_the_rpcs_shape() -> None:
    class ServerStreamingEcho(cqrs.StreamingRequestHandler[EchoPing, Pong]):
        async def handle(self, request: EchoPing) -> AsyncIterator[Pong]:
            yield Pong(n=request.n)

    with pytest.raises(StartupError) as refused:
        shapes_app(Probe(), echo=ServerStreamingEcho).add_services(
            shapes_pb2, bindings=BINDINGS, services=["Shapes"]
        )
    [problem] = refused.value.problems
    assert problem == (
        "rpc shapes.v1.Shapes/Echo is bidi-streaming but its handler must subclass "
        "cqrs.BidiStreamingRequestHandler, and test_a_handler_of_the_wrong_shape_is_refused_naming_the_rpcs_shape"
        ".<locals>.ServerStreamingEcho does not"
    )
