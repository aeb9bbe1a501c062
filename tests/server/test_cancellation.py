"""Cancel at any point: the handler's finally runs within 100 ms, in the RPC's own task."""

from __future__ import annotations

import asyncio

import pytest

from server.testing import serve_for_test
from streamtest.v1 import stream_test_pb2, stream_test_pb2_grpc
from tests.server.ticks import Probe, ticks_app

COUNT = 6


async def _until(condition: object, timeout: float = 5.0) -> None:
    """Wait for a condition the server side reaches on its own (bounded; never a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("the server never reached the expected state")
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("k", [0, 1, COUNT // 2, COUNT], ids=["k=0", "k=1", "k=mid", "k=last"])
async def test_cancel_while_the_handler_awaits(k: int) -> None:
    probe = Probe()
    async with serve_for_test(ticks_app(probe)) as served:
        stub = served.stub(stream_test_pb2_grpc.TickServiceStub)
        call = stub.Ticks(stream_test_pb2.TicksCommand(count=COUNT, mode="block"))
        for expected in range(1, k + 1):
            assert (await call.read()).seq == expected
        await asyncio.wait_for(probe.started.wait(), 5)  # all ticks produced, now awaiting forever
        cancelled_at = asyncio.get_running_loop().time()
        call.cancel()
        await asyncio.wait_for(probe.closed.wait(), 5)
        assert probe.closed_at[0] - cancelled_at < 0.1
        assert probe.closed_in_rpc_task == [True]
        assert probe.open_streams == 0
        assert served.running.stream_limit.active == 0


@pytest.mark.parametrize("k", [0, 1, 5])
async def test_cancel_while_the_handler_is_parked_at_a_yield_behind_a_slow_reader(k: int) -> None:
    probe = Probe()
    async with serve_for_test(ticks_app(probe)) as served:
        stub = served.stub(stream_test_pb2_grpc.TickServiceStub)
        call = stub.Ticks(stream_test_pb2.TicksCommand(mode="flood", payload_bytes=64 * 1024))
        for _ in range(k):
            await call.read()
        # the reader stops; flow control stops the producer after a bounded number of ticks
        last = -1
        while probe.produced != last:
            last = probe.produced
            await asyncio.sleep(0.2)
        assert probe.produced < 1000
        cancelled_at = asyncio.get_running_loop().time()
        call.cancel()
        await asyncio.wait_for(probe.closed.wait(), 5)
        assert probe.closed_at[0] - cancelled_at < 0.1
        assert probe.closed_in_rpc_task == [True]
        assert served.running.stream_limit.active == 0


async def test_a_cancelled_stream_is_logged_as_cancelled_not_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    probe = Probe()
    async with serve_for_test(ticks_app(probe)) as served:
        stub = served.stub(stream_test_pb2_grpc.TickServiceStub)
        call = stub.Ticks(stream_test_pb2.TicksCommand(mode="flood", payload_bytes=64 * 1024))
        await call.read()
        await _until(lambda: probe.produced > 3)
        call.cancel()
        await asyncio.wait_for(probe.closed.wait(), 5)
        await _until(lambda: any(r.name == "server.rpc" for r in caplog.records))
    statuses = [r.rpc_status for r in caplog.records if r.name == "server.rpc"]  # type: ignore[attr-defined]
    assert statuses == ["CANCELLED"]
    assert not [r for r in caplog.records if r.name == "server.errors"]
    assert call.cancelled()
