"""The Python grpc.aio client of the gRPC benchmark (one process, one channel, default event loop).

    python -m bench._grpc_client --port P --scenarios JSON     # prints one JSON object

Scenario kinds: ``load`` opens ``streams`` concurrent streams ``rounds`` times, each of ``count``
items, and reports messages/s and the time to first message of every stream; ``open`` holds
``streams`` streams open (each has received its first item) and reads the server's RSS before and
while they are open. Every loop is bounded by count, every wait by a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import grpc
from benchgrpc.v1 import bench_pb2, bench_pb2_grpc

TIMEOUT = 120.0


def rss_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB (Linux)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one_stream(stub: Any, request: Any) -> tuple[int, float]:
    start = time.perf_counter()
    call = stub.StreamItems(request, timeout=TIMEOUT)
    first = 0.0
    received = 0
    async for _ in call:
        if not received:
            first = time.perf_counter() - start
        received += 1
    return received, first


async def load(stub: Any, sc: dict[str, Any]) -> dict[str, Any]:
    request = bench_pb2.StreamItemsRequest(
        count=sc["count"], payload_size=sc["payload"], with_event=sc.get("with_event", False)
    )
    ttfm: list[float] = []
    received = 0
    start = time.perf_counter()
    for _ in range(sc["rounds"]):
        results = await asyncio.gather(*(one_stream(stub, request) for _ in range(sc["streams"])))
        for got, first in results:
            received += got
            ttfm.append(first)
    seconds = time.perf_counter() - start
    expected = sc["count"] * sc["streams"] * sc["rounds"]
    if received != expected:
        raise SystemExit(f"client: received {received} messages, expected {expected}")
    return {
        "messages": received,
        "seconds": seconds,
        "msgs_per_s": received / seconds,
        "ttfm_p50_ms": statistics.median(ttfm) * 1000,
        "ttfm_p99_ms": percentile(ttfm, 0.99) * 1000,
    }


async def hold_open(stub: Any, sc: dict[str, Any], server_pid: int) -> dict[str, Any]:
    """Open ``streams`` streams that each send one item then wait; RSS before and while open."""
    streams = sc["streams"]
    request = bench_pb2.StreamItemsRequest(count=2, payload_size=16, hold_ms=sc["hold_ms"])
    warm = [stub.StreamItems(request, timeout=TIMEOUT) for _ in range(10)]
    await asyncio.wait_for(asyncio.gather(*(c.read() for c in warm)), 30)
    for call in warm:
        call.cancel()
    await asyncio.sleep(0.5)
    before = rss_kb(server_pid)
    calls = [stub.StreamItems(request, timeout=TIMEOUT) for _ in range(streams)]
    firsts = await asyncio.wait_for(asyncio.gather(*(c.read() for c in calls)), 60)
    if any(first is grpc.aio.EOF for first in firsts):
        raise SystemExit("client: a held stream ended before its first item")
    await asyncio.sleep(0.5)
    during = rss_kb(server_pid)
    for call in calls:
        call.cancel()
    return {
        "streams": streams,
        "rss_before_kb": before["VmRSS"],
        "rss_open_kb": during["VmRSS"],
        "kb_per_stream": (during["VmRSS"] - before["VmRSS"]) / streams,
    }


async def run(port: int, scenarios: list[dict[str, Any]], server_pid: int) -> dict[str, Any]:
    options = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = bench_pb2_grpc.BenchServiceStub(channel)
        out: dict[str, Any] = {}
        for sc in scenarios:
            if sc["kind"] == "load":
                out[sc["name"]] = await load(stub, sc)
            else:
                out[sc["name"]] = await hold_open(stub, sc, server_pid)
        return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--scenarios", required=True, help="a JSON list of scenarios")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.port, json.loads(args.scenarios), args.server_pid))))


if __name__ == "__main__":
    main()
