"""Stream N+1 is shed with RESOURCE_EXHAUSTED at once while health and reflection keep answering."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from server import ServerSettings
from server.testing import serve_for_test
from streamtest.v1 import stream_test_pb2, stream_test_pb2_grpc
from tests.server.helpers import error_info, rich_status
from tests.server.ticks import Probe, ticks_app


async def _wait_open(probe: Probe, count: int) -> None:
    for _ in range(500):
        if probe.open_streams == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} open streams, have {probe.open_streams}")


async def test_stream_past_the_limit_is_refused_at_once_and_health_and_reflection_still_answer() -> None:
    probe = Probe()
    app = ticks_app(probe, settings=ServerSettings(max_concurrent_streams=2))
    async with serve_for_test(app) as served:
        stub = served.stub(stream_test_pb2_grpc.TickServiceStub)
        held = [stub.Ticks(stream_test_pb2.TicksCommand(count=1, mode="block")) for _ in range(2)]
        for call in held:
            await call.read()
        await _wait_open(probe, 2)

        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(grpc.aio.AioRpcError) as shed:
            await stub.Ticks(stream_test_pb2.TicksCommand(count=1, mode="count")).read()
        assert shed.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert loop.time() - began < 2  # refused, not queued behind the held streams
        assert error_info(rich_status(shed.value)).reason == "TOO_MANY_STREAMS"
        assert served.running.stream_limit.refused == 1

        health = health_pb2_grpc.HealthStub(served.channel)
        assert (
            await health.Check(health_pb2.HealthCheckRequest())
        ).status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(served.channel)
        replies = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        listed = [s.name async for reply in replies for s in reply.list_services_response.service]
        assert "streamtest.v1.TickService" in listed
        # unary RPCs are not counted as streams
        echo = await stub.Echo(stream_test_pb2.EchoQuery(text="hi"))
        assert echo.text == "hi"

        held[0].cancel()
        await _wait_open(probe, 1)
        ticks = [t.seq async for t in stub.Ticks(stream_test_pb2.TicksCommand(count=3, mode="count"))]
        assert ticks == [1, 2, 3]
        held[1].cancel()
