"""A real server process against clients that stop reading or freeze."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from streamtest.v1 import stream_test_pb2, stream_test_pb2_grpc
from tests.e2e.conftest import ROOT, ServerProcess, start_server

TICKS_APP = "tests.server.ticks:ticks_app"
SLOW_CLIENTS = 200
# A parked stream measured ~70 KB on the 2-core reference machine (docs/semantics.md, slow readers); the
# bound leaves room for allocator noise while still failing if messages pile up in our code.
MAX_GROWTH_PER_STREAM_KB = 400


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc status")


async def _settled_rss(pid: int, *, interval: float = 0.3, tries: int = 40) -> int:
    """RSS once it stops growing (producers parked by flow control), bounded in time."""
    previous = -1
    for _ in range(tries):
        current = _rss_kb(pid)
        if abs(current - previous) < 64:
            return current
        previous = current
        await asyncio.sleep(interval)
    return _rss_kb(pid)


async def _stop(server: ServerProcess) -> None:
    if server.process.returncode is None:
        server.process.kill()
        await server.process.wait()


async def test_200_clients_that_stop_reading_keep_server_memory_bounded() -> None:
    server = await start_server("--app", TICKS_APP)
    channels: list[grpc.aio.Channel] = []
    try:
        async with grpc.aio.insecure_channel(server.address) as warm:
            stub = stream_test_pb2_grpc.TickServiceStub(warm)
            for _ in range(20):
                command = stream_test_pb2.TicksCommand(count=20, mode="count", payload_bytes=16384)
                assert len([t async for t in stub.Ticks(command)]) == 20
        baseline = await _settled_rss(server.process.pid)
        calls = []
        for _ in range(SLOW_CLIENTS):
            channel = grpc.aio.insecure_channel(server.address)
            channels.append(channel)
            stub = stream_test_pb2_grpc.TickServiceStub(channel)
            call = stub.Ticks(stream_test_pb2.TicksCommand(mode="flood", payload_bytes=16384))
            assert (await call.read()).seq == 1  # then never read again
            calls.append(call)
        parked = await _settled_rss(server.process.pid)
        growth_per_stream = (parked - baseline) / SLOW_CLIENTS
        assert growth_per_stream < MAX_GROWTH_PER_STREAM_KB, f"{growth_per_stream:.0f} KB per parked stream"

        async with grpc.aio.insecure_channel(server.address) as fresh:
            health = health_pb2_grpc.HealthStub(fresh)
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        for call in calls:
            call.cancel()
        assert await server.terminate(timeout=10) == 0
        log = "".join(server.log)
        assert log.count("status=CANCELLED") == SLOW_CLIENTS
        assert "Traceback" not in log
    finally:
        for channel in channels:
            await channel.close()
        await _stop(server)


FROZEN_CLIENT = """
import asyncio, sys
import grpc
from streamtest.v1 import stream_test_pb2, stream_test_pb2_grpc

async def main():
    async with grpc.aio.insecure_channel(sys.argv[1]) as channel:
        call = stream_test_pb2_grpc.TickServiceStub(channel).Ticks(stream_test_pb2.TicksCommand(count=1, mode="block"))
        await call.read()
        print("streaming", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_frozen_client_is_detected_by_keepalive_and_its_stream_cleaned_up() -> None:
    server = await start_server("--app", TICKS_APP, "--keepalive-time", "0.5", "--keepalive-timeout", "0.5")
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FROZEN_CLIENT,
        server.address,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ},
    )
    try:
        assert client.stdout is not None
        assert (await asyncio.wait_for(client.stdout.readline(), 20)).strip() == b"streaming"
        client.send_signal(signal.SIGSTOP)
        loop = asyncio.get_running_loop()
        frozen_at = loop.time()
        while "status=CANCELLED" not in "".join(server.log):
            assert loop.time() - frozen_at < 10, "the frozen client's stream was never cleaned up"
            await asyncio.sleep(0.1)
        # keepalive-time + keepalive-timeout, plus scheduling slack
        assert loop.time() - frozen_at < 5
    finally:
        client.send_signal(signal.SIGKILL)
        await client.wait()
        await _stop(server)
