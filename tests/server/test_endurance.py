"""No leaks after thousands of cancelled and completed streams; a bounded load arrives exactly once, in order."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
from pathlib import Path

import grpc
import pytest

from server.testing import serve_for_test
from streamtest.v1 import stream_test_pb2, stream_test_pb2_grpc
from tests.server.ticks import Probe, ticks_app

ROUNDS = 2_000
# Tolerances: RSS may settle a little higher (allocator arenas, grpc caches) but must not grow with the
# number of streams: 2,000 leaked streams would cost far more than this.
RSS_TOLERANCE_KB = 8 * 1024
FD_TOLERANCE = 2
TASK_TOLERANCE = 0


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _quiet() -> tuple[int, int, int]:
    for _ in range(20):  # let cancelled calls finish their teardown
        await asyncio.sleep(0.01)
    gc.collect()
    return len(asyncio.all_tasks()), _fds(), _rss_kb()


async def test_thousands_of_cancelled_then_completed_streams_leave_no_tasks_fds_or_memory_behind() -> None:
    probe = Probe()
    rng = random.Random(20261126)
    async with serve_for_test(ticks_app(probe)) as served:
        stub = served.stub(stream_test_pb2_grpc.TickServiceStub)

        async def cancelled(after: int) -> None:
            call = stub.Ticks(stream_test_pb2.TicksCommand(count=20, mode="block", payload_bytes=256))
            for _ in range(after):
                await call.read()
            call.cancel()

        async def completed() -> None:
            ticks = [t.seq async for t in stub.Ticks(stream_test_pb2.TicksCommand(count=5, mode="count"))]
            assert ticks == [1, 2, 3, 4, 5]

        async def batches(make: object, rounds: int = ROUNDS) -> None:
            for start in range(0, rounds, 100):
                await asyncio.gather(*(make(i) for i in range(start, start + 100)))  # type: ignore[operator]

        await batches(lambda _: cancelled(rng.randint(0, 20)), 300)  # warm-up: caches, arenas, grpc pools
        await batches(lambda _: completed(), 300)
        tasks, fds, rss = await _quiet()

        await batches(lambda _: cancelled(rng.randint(0, 20)))
        await batches(lambda _: completed())
        for _ in range(200):
            if probe.open_streams == 0 and served.running.stream_limit.active == 0:
                break
            await asyncio.sleep(0.01)
        assert probe.open_streams == 0, "handlers left open"
        assert served.running.stream_limit.active == 0
        after_tasks, after_fds, after_rss = await _quiet()
        assert after_tasks - tasks <= TASK_TOLERANCE, f"{after_tasks - tasks} tasks leaked"
        assert after_fds - fds <= FD_TOLERANCE, f"{after_fds - fds} file descriptors leaked"
        assert after_rss - rss <= RSS_TOLERANCE_KB, f"RSS grew by {after_rss - rss} KB"
        assert [t.seq async for t in stub.Ticks(stream_test_pb2.TicksCommand(count=2, mode="count"))] == [
            1,
            2,
        ]


async def test_an_isolated_event_handler_failure_is_logged_and_counted_and_the_stream_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="cqrs.events")
    probe = Probe()
    app = ticks_app(probe)
    async with serve_for_test(app) as served:
        stub = served.stub(stream_test_pb2_grpc.TickServiceStub)
        call = stub.Ticks(stream_test_pb2.TicksCommand(count=3, mode="event"))
        assert [t.seq async for t in call] == [1, 2, 3]
        assert await call.code() is grpc.StatusCode.OK
    assert probe.handled_events == 3
    assert app.streaming_mediator is not None
    assert app.streaming_mediator.stats.event_handler_failures == 3
    failures = [r for r in caplog.records if r.name == "cqrs.events"]
    assert len(failures) == 3 and all(r.exc_info for r in failures)


STREAMS, MESSAGES = 50, 50


async def test_a_bounded_load_arrives_exactly_once_and_in_order() -> None:
    async with serve_for_test(ticks_app()) as served:
        stub = served.stub(stream_test_pb2_grpc.TickServiceStub)

        async def one_stream() -> list[int]:
            command = stream_test_pb2.TicksCommand(count=MESSAGES, mode="count", payload_bytes=64)
            return [t.seq async for t in stub.Ticks(command, timeout=30)]

        results = await asyncio.wait_for(asyncio.gather(*(one_stream() for _ in range(STREAMS))), 60)
    assert results == [list(range(1, MESSAGES + 1))] * STREAMS
