"""Server-streaming through the HTTP port against gRPC, in one run: SSE and gRPC-Web messages/s.

One ``python -m server`` serves ``tests.server.ticks:ticks_app`` on a gRPC port and an HTTP port
(``--http-address``). The same stream (``Ticks``: ``--messages`` items of ``--payload`` bytes) is
read over gRPC (grpc.aio), gRPC-Web and SSE (``http.client``), ``--streams`` at once each.
Results: ``bench/results/web.json`` and the ``web`` section of ``BENCHMARKS.md`` (``--no-report``
prints only).

    python -m bench.web [--streams 8] [--messages 2000] [--payload 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import struct
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import grpc

from bench._grpc_procs import free_port
from bench._sections import markers, replace_section
from streamtest.v1 import stream_test_pb2

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "web.json"
PATH = "/streamtest.v1.TickService/Ticks"
BEGIN, END = markers("web")


def start_server(grpc_port: int, http_port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "server", "--app", "tests.server.ticks:ticks_app"]
    command += ["--address", f"127.0.0.1:{grpc_port}", "--http-address", f"127.0.0.1:{http_port}"]
    process = subprocess.Popen([*command, "--log-level", "warning"], cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", http_port, timeout=1).request("GET", "/healthz")
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start within 30 s")


def command(messages: int, payload: int) -> stream_test_pb2.TicksCommand:
    return stream_test_pb2.TicksCommand(count=messages, payload_bytes=payload, mode="count")


async def grpc_streams(port: int, streams: int, messages: int, payload: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        ticks = channel.unary_stream(
            PATH,
            request_serializer=stream_test_pb2.TicksCommand.SerializeToString,
            response_deserializer=stream_test_pb2.Tick.FromString,
        )

        async def one() -> int:
            return sum([1 async for _ in ticks(command(messages, payload))])

        return sum(await asyncio.gather(*(one() for _ in range(streams))))


def grpc_web_stream(port: int, messages: int, payload: int) -> int:
    body = command(messages, payload).SerializeToString()
    connection = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"content-type": "application/grpc-web+proto"}
    connection.request("POST", PATH, struct.pack(">BI", 0, len(body)) + body, headers)
    response, count = connection.getresponse(), 0
    while header := response.read(5):
        flags, length = struct.unpack(">BI", header)
        response.read(length)
        count += not flags & 0x80
    connection.close()
    return count


def sse_stream(port: int, messages: int, payload: int) -> int:
    message = json.dumps({"count": messages, "payloadBytes": payload, "mode": "count"})
    connection = http.client.HTTPConnection("127.0.0.1", port)
    query = urllib.parse.urlencode({"message": message})
    connection.request("GET", f"{PATH}?{query}", headers={"accept": "text/event-stream"})
    response, count = connection.getresponse(), 0
    for line in response:
        count += line.startswith(b'data: {"seq"')
    connection.close()
    return count


async def threaded(reader: object, port: int, streams: int, messages: int, payload: int) -> int:
    calls = [asyncio.to_thread(reader, port, messages, payload) for _ in range(streams)]  # type: ignore[arg-type]
    return sum(await asyncio.gather(*calls))


async def measure(args: argparse.Namespace, grpc_port: int, http_port: int) -> dict[str, float]:
    runs: dict[str, list[float]] = {"grpc": [], "grpc-web": [], "sse": []}
    expected = args.streams * args.messages
    for _ in range(args.repeat):
        for name in runs:
            started = time.perf_counter()
            if name == "grpc":
                got = await grpc_streams(grpc_port, args.streams, args.messages, args.payload)
            else:
                reader = grpc_web_stream if name == "grpc-web" else sse_stream
                got = await threaded(reader, http_port, args.streams, args.messages, args.payload)
            elapsed = time.perf_counter() - started
            if got != expected:
                raise SystemExit(f"{name}: {got} messages arrived, {expected} expected")
            runs[name].append(expected / elapsed)
    return {name: statistics.median(rates) for name, rates in runs.items()}


def report(args: argparse.Namespace, rates: dict[str, float]) -> str:
    grpc_rate = rates["grpc"]
    cells = " | ".join(f"{rates[n]:,.0f} ({rates[n] / grpc_rate:.2f}x)" for n in ("grpc-web", "sse"))
    return "\n".join(
        [
            BEGIN,
            "## Browser protocols (`python -m bench.web`)",
            "",
            f"Server-streaming through `--http-address` against gRPC in the same run: {args.streams} streams "
            f"x {args.messages} messages of {args.payload} bytes, median of {args.repeat}; messages/s "
            "(ratio to gRPC); client-bound: grpc.aio for gRPC, http.client for the others.",
            "",
            "| gRPC | gRPC-Web | SSE |",
            "| ---: | ---: | ---: |",
            f"| {grpc_rate:,.0f} | {cells} |",
            END,
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.web")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--payload", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-report", action="store_true", help="print the figures only")
    args = parser.parse_args(argv)
    grpc_port, http_port = free_port(), free_port()
    server = start_server(grpc_port, http_port)
    try:
        rates = asyncio.run(measure(args, grpc_port, http_port))
    finally:
        server.terminate()
        server.wait(30)
    print(json.dumps(rates, indent=2))
    if not args.no_report:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            json.dumps({"settings": vars(args), "messages_per_second": rates}, indent=2) + "\n"
        )
        replace_section("web", report(args, rates))


if __name__ == "__main__":
    main()
