"""Bounded load: 500 concurrent streams x 200 messages against ``server.App`` and a hand-written baseline.

Every message must arrive exactly once and in order (sequence numbers), with no unexpected status;
the run is capped in time. Reported: streams held at once, messages/s, server RSS (baseline before the
load and peak during it), each also as a ratio to the hand-written grpc.aio servicer measured in the
same run. Results: ``bench/results/load.json`` and the ``load`` section of ``BENCHMARKS.md``.

    python -m bench.load [--streams 500] [--messages 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

import grpc

from bench._grpc_procs import free_port
from bench._sections import markers, replace_section
from streamtest.v1 import stream_test_pb2, stream_test_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "load.json"
BEGIN, END = markers("load")
SERVERS = {
    "baseline (hand-written grpc.aio)": [sys.executable, "-m", "bench._load_baseline", "{address}"],
    "ours (server.App, 0 events)": [
        sys.executable,
        "-m",
        "server",
        "--app",
        "tests.server.ticks:ticks_app",
        "--address",
        "{address}",
        "--log-level",
        "warning",
    ],
}
CHANNELS = 25  # streams are spread over several connections, as from many clients
TIME_CAP = 180.0


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _start(command: list[str]) -> tuple[asyncio.subprocess.Process, str]:
    """Start a server on a free loopback port and wait until it accepts RPCs (bounded)."""
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [part.replace("{address}", address) for part in command]
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            await asyncio.wait_for(channel.channel_ready(), 60)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return process, address


async def _one_run(command: list[str], streams: int, messages: int) -> dict[str, Any]:
    process, address = await _start(command)
    channels = [grpc.aio.insecure_channel(address) for _ in range(CHANNELS)]
    open_now = held = 0
    statuses: dict[str, int] = {}
    peak_rss = baseline_rss = 0
    try:
        stubs = [stream_test_pb2_grpc.TickServiceStub(channel) for channel in channels]
        warm = [t.seq async for t in stubs[0].Ticks(stream_test_pb2.TicksCommand(count=10, mode="count"))]
        assert warm == list(range(1, 11))
        baseline_rss = peak_rss = _rss_kb(process.pid)

        async def one(index: int) -> bool:
            nonlocal open_now, held
            command_ = stream_test_pb2.TicksCommand(count=messages, mode="count", payload_bytes=16)
            expected = 1
            open_now += 1
            held = max(held, open_now)
            try:
                async for tick in stubs[index % CHANNELS].Ticks(command_):
                    if tick.seq != expected:
                        return False
                    expected += 1
                statuses["OK"] = statuses.get("OK", 0) + 1
            except grpc.aio.AioRpcError as error:
                statuses[error.code().name] = statuses.get(error.code().name, 0) + 1
                return False
            finally:
                open_now -= 1
            return expected == messages + 1

        async def sample_rss() -> None:
            nonlocal peak_rss
            while True:
                peak_rss = max(peak_rss, _rss_kb(process.pid))
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample_rss())
        loop = asyncio.get_running_loop()
        began = loop.time()
        results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(streams))), TIME_CAP)
        elapsed = loop.time() - began
        sampler.cancel()
    finally:
        for channel in channels:
            await channel.close()
        process.terminate()
        await process.wait()
    return {
        "complete_and_in_order": sum(results),
        "streams": streams,
        "statuses": statuses,
        "streams_held": held,
        "messages_per_s": streams * messages / elapsed,
        "elapsed_s": elapsed,
        "rss_baseline_kb": baseline_rss,
        "rss_peak_kb": peak_rss,
    }


async def run(streams: int, messages: int, repeat: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SERVERS}
    for _ in range(repeat):  # alternate the servers so drift hits both alike
        for name, command in SERVERS.items():
            runs[name].append(await _one_run(command, streams, messages))
    summary = {}
    for name, samples in runs.items():
        summary[name] = {
            "messages_per_s": statistics.median(s["messages_per_s"] for s in samples),
            "rss_peak_kb": statistics.median(s["rss_peak_kb"] for s in samples),
            "rss_baseline_kb": statistics.median(s["rss_baseline_kb"] for s in samples),
            "streams_held": min(s["streams_held"] for s in samples),
            "all_exact": all(s["complete_and_in_order"] == streams for s in samples),
            "unexpected_statuses": sorted({k for s in samples for k in s["statuses"] if k != "OK"}),
        }
    return {"streams": streams, "messages": messages, "repeat": repeat, "summary": summary, "runs": runs}


def render(result: dict[str, Any]) -> str:
    summary = result["summary"]
    base = summary["baseline (hand-written grpc.aio)"]
    lines = [
        BEGIN,
        "## Load (bench/load.py)",
        "",
        f"{result['streams']} concurrent streams x {result['messages']} messages (16-byte payload) over "
        f"{CHANNELS} connections from one Python grpc.aio client, median of {result['repeat']} "
        f"alternating runs; {result['date']} (`python -m bench.load`).",
        "",
        "| server | exactly once, in order | unexpected statuses | streams held | messages/s | x baseline "
        "| RSS before -> peak (MiB) | peak RSS x baseline |",
        "|---|---|---|---:|---:|---:|---|---:|",
    ]
    for name, row in summary.items():
        exact = "yes" if row["all_exact"] else "**no**"
        unexpected = ", ".join(row["unexpected_statuses"]) or "none"
        speed = row["messages_per_s"] / base["messages_per_s"]
        memory = row["rss_peak_kb"] / base["rss_peak_kb"]
        rss = f"{row['rss_baseline_kb'] / 1024:.0f} -> {row['rss_peak_kb'] / 1024:.0f}"
        lines.append(
            f"| {name} | {exact} | {unexpected} | {row['streams_held']} | {row['messages_per_s']:,.0f} "
            f"| {speed:.2f} | {rss} | {memory:.2f} |"
        )
    lines += [END]
    return "\n".join(lines)


def write_benchmarks(section: str) -> None:
    replace_section("load", section)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv if argv is not None else [])
    result = asyncio.run(run(args.streams, args.messages, args.repeat))
    result["date"] = datetime.date.today().isoformat()
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    section = render(result)
    write_benchmarks(section)
    print(section)
    failed = [
        name for name, row in result["summary"].items() if not row["all_exact"] or row["unexpected_statuses"]
    ]
    if failed:
        raise SystemExit(f"load: lost, reordered or failed streams on {', '.join(failed)}")


if __name__ == "__main__":
    main(sys.argv[1:])
