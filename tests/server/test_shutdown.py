"""Graceful stop: health NOT_SERVING at once, new RPCs refused, in-flight streams get the grace period."""

from __future__ import annotations

import asyncio
import typing
from datetime import UTC, datetime

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sample.files.v1 import files_pb2, files_pb2_grpc

import cqrs
from cqrs.requests.request_handler import StreamingRequestHandler
from server.settings import ServerSettings
from tests.server.helpers import app_with
from tests.server.sample import FileProcessedResult, ProcessFilesCommand


class Gate:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.finally_ran = asyncio.Event()


class GatedHandler(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    """Yields one result, waits at the gate ('endless' never passes it), yields the rest."""

    def __init__(self, gate: Gate) -> None:
        self._gate = gate

    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        try:
            first, *rest = request.file_ids
            yield FileProcessedResult(file_id=first, status="completed", processed_at=datetime.now(UTC))
            self._gate.started.set()
            if first == "endless":
                await asyncio.Event().wait()
            await self._gate.release.wait()
            for file_id in rest:
                yield FileProcessedResult(file_id=file_id, status="completed", processed_at=datetime.now(UTC))
        finally:
            self._gate.finally_ran.set()


def _gated_app(gate: Gate, grace: float) -> typing.Any:
    container = cqrs.Container()
    container.register_instance(Gate, gate)
    app = app_with(GatedHandler, container=container)
    app.settings = ServerSettings(grace=grace)
    return app


async def test_in_flight_stream_finishes_within_grace_while_health_says_not_serving() -> None:
    gate = Gate()
    app = _gated_app(gate, grace=5.0)
    running = await app.start("127.0.0.1:0")
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = files_pb2_grpc.FileServiceStub(channel)
        call = stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["a", "b", "c"]))
        first = await call.read()
        await gate.started.wait()
        stopping = asyncio.create_task(running.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()
        assert running.draining.is_set()
        assert running.health.names  # health keeps its registry while draining
        status = await running.health.status("")
        assert status is not None and status.name == "NOT_SERVING"
        # a new connection is refused while the old stream drains
        async with grpc.aio.insecure_channel(running.address) as fresh:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await health_pb2_grpc.HealthStub(fresh).Check(health_pb2.HealthCheckRequest(), timeout=2)
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        gate.release.set()
        rest = []
        while (message := await call.read()) is not grpc.aio.EOF:
            rest.append(message.file_id)
        assert [first.file_id, *rest] == ["a", "b", "c"]
        assert await call.code() is grpc.StatusCode.OK
        await asyncio.wait_for(stopping, 5)


async def test_stream_still_running_after_grace_is_cancelled_and_its_finally_runs() -> None:
    gate = Gate()
    app = _gated_app(gate, grace=0.3)
    running = await app.start("127.0.0.1:0")
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = files_pb2_grpc.FileServiceStub(channel)
        call = stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["endless"]))
        await call.read()
        await gate.started.wait()
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.wait_for(running.stop(), 5)
        assert loop.time() - began < 0.3 + 1.0
        await asyncio.wait_for(gate.finally_ran.wait(), 2)
        with pytest.raises(grpc.aio.AioRpcError):
            await call.read()


async def test_shutdown_callbacks_run_after_the_drain_in_reverse_order_even_if_one_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = Gate()
    app = _gated_app(gate, grace=5.0)
    order: list[str] = []

    @app.on_shutdown
    def close_first_registered() -> None:
        order.append(f"sync (stream finished: {gate.finally_ran.is_set()})")

    @app.on_shutdown
    def broken() -> None:
        raise RuntimeError("cannot close")

    @app.on_shutdown
    async def close_last_registered() -> None:
        await asyncio.sleep(0)
        order.append(f"async (stream finished: {gate.finally_ran.is_set()})")

    running = await app.start("127.0.0.1:0")
    async with grpc.aio.insecure_channel(running.address) as channel:
        call = files_pb2_grpc.FileServiceStub(channel).ProcessFiles(
            files_pb2.ProcessFilesCommand(file_ids=["a", "b"])
        )
        await call.read()
        await gate.started.wait()
        stopping = asyncio.create_task(running.stop())
        await asyncio.sleep(0.05)
        assert order == []  # nothing is closed while a stream still drains
        gate.release.set()
        while await call.read() is not grpc.aio.EOF:
            pass
        await asyncio.wait_for(stopping, 5)
    assert order == ["async (stream finished: True)", "sync (stream finished: True)"]
    assert any("shutdown callback" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
