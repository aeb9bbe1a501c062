"""The event bus: the demo's ProcessFiles (one event per item) with the bus on and off, and the latency
from an item's handler to a watcher connected to another server process on the same bus.

(a) messages/s of ProcessFiles, concurrent streams, the demo served alone vs with ``--nats-url``
(each item's FileProcessed stored in JetStream before the item is sent), alternating runs, median.
(b) a producer (bench/_bus_app.py: StreamItems, one bus event per item, no file work) and a demo
server on one nats-server; h2load offers ``--rate`` events/s for ``--seconds`` as StreamItems calls
(a load generator in C, so the harness takes little of the machine's two cores); a WatchFileEvents
watcher of the demo, in this process, measures now - the event's ``occurred_at`` (stamped just before
the handler's yield; one clock, one machine). ``--latency-repeat`` runs per rate, each on fresh
servers, pooled: p50 and p99 (and each run's p99), with the CPU time per event of the producer, the
watcher's server, nats-server, this client and h2load. Results: ``bench/results/bus.json`` and the
``bus`` section of ``BENCHMARKS.md``.

    python -m bench.bus [--streams 8] [--items 500] [--repeat 3] [--rate 500 1000 2000] [--seconds 5]
                        [--latency-repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from bench._grpc_gen import GEN, generate
from bench._grpc_procs import (
    cpu_seconds,
    free_port,
    h2load_argv,
    h2load_seconds,
    request_file,
    stream_bytes,
)
from bench._sections import markers, replace_section
from bench._tools import ensure_h2load
from cqrs.bus import NatsServer
from demo.files.v1 import files_pb2, files_pb2_grpc
from server import accel

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "bus.json"
BEGIN, END = markers("bus")
TIME_CAP = 120.0  # per measured run
BATCH = 10  # items per StreamItems call of the latency run (h2load offers the calls)
DEMO = "examples.files:create_app"
PROCESSES = ("producer", "watcher", "nats-server", "client", "h2load")  # the latency run's, as reported
STREAMS = 100  # h2load's concurrent calls at most: enough that a slow call never holds the rate back
PRODUCER = "bench._bus_app:create_app"  # the latency run's producer: one bus event per item, no file work


@contextlib.asynccontextmanager
async def _demo(data_dir: Path, nats_url: str | None, app: str = DEMO) -> AsyncIterator[tuple[str, int]]:
    """A server process of ``app`` (the demo) on a free loopback port (with the bus at ``nats_url``);
    its address and pid."""
    address = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "server", "--app", app, "--address", address]
    argv += ["--log-level", "warning"] + (["--nats-url", nats_url] if nats_url else [])
    path = os.pathsep.join(filter(None, [str(GEN), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "FILES_DATA_DIR": str(data_dir), "PYTHONPATH": path}
    env.pop("CQRS_GRPC_NATS_URL", None)
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            await asyncio.wait_for(channel.channel_ready(), 60)
        yield address, process.pid
    finally:
        process.terminate()
        await process.wait()


async def _upload(stub: files_pb2_grpc.FileServiceStub) -> str:
    reply = await stub.UploadFile(files_pb2.UploadFileCommand(name="bench.txt", content=b"a\nb\n"))
    return str(reply.file_id)


async def _throughput(address: str, streams: int, items: int) -> float:
    """Messages/s of ``streams`` concurrent ProcessFiles calls of ``items`` ids each (all checked)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = files_pb2_grpc.FileServiceStub(channel)
        file_id = await _upload(stub)

        async def one() -> int:
            call = stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=[file_id] * items))
            return sum([r.status == "completed" async for r in call])

        await one()  # warm up
        began = time.perf_counter()
        done = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(streams))), TIME_CAP)
        elapsed = time.perf_counter() - began
    if sum(done) != streams * items:
        raise SystemExit(f"bus: {streams * items - sum(done)} items were not completed")
    return streams * items / elapsed


async def _latency(
    h2load: str, producer: str, watcher: str, rate: float, seconds: float, pids: dict[str, int]
) -> dict[str, Any]:
    """Offer ``rate`` events/s on ``producer`` for ``seconds`` (h2load: StreamItems calls of ``BATCH``
    items at ``rate / BATCH`` calls/s); the latencies seen by a watcher of ``watcher``, and the CPU
    time of each process in ``pids`` (name: pid) and of h2load while they flowed."""
    calls = max(1, int(rate * seconds) // BATCH)
    total = calls * BATCH
    body = request_file(0, BATCH, with_event=True)
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(watcher) as channel:
        watch = files_pb2_grpc.FileServiceStub(channel).WatchFileEvents(files_pb2.WatchFileEventsQuery())
        await watch.initial_metadata()

        async def receive() -> None:
            async for event in watch:
                if event.kind == "file_processed":
                    at = event.occurred_at
                    latencies.append(time.time() - (at.seconds + at.nanos / 1e9))
                    if len(latencies) == total:
                        return

        receiving = asyncio.ensure_future(receive())
        cpu_before, children_before = {name: cpu_seconds(pid) for name, pid in pids.items()}, os.times()
        began = time.perf_counter()
        port = int(producer.rsplit(":", 1)[1])
        argv = h2load_argv(h2load, port, body, total=calls, streams=STREAMS, rate=rate / BATCH)
        load = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        try:
            out, _ = await asyncio.wait_for(load.communicate(), seconds + TIME_CAP)
            assert load.returncode is not None
            expected = calls * stream_bytes(0, BATCH)
            h2load_seconds(out.decode(), load.returncode, total=calls, expected_bytes=expected)
            await asyncio.wait_for(receiving, TIME_CAP)
        finally:
            if load.returncode is None:
                load.kill()
                await load.wait()
            receiving.cancel()
            watch.cancel()
        elapsed = time.perf_counter() - began
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        children = os.times()
        cpu["h2load"] = children.children_user + children.children_system
        cpu["h2load"] -= children_before.children_user + children_before.children_system
    return {"latencies": latencies, "cpu": cpu, "elapsed": elapsed}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One rate's runs pooled: percentiles over all their events, CPU per event per process."""
    ordered = sorted(latency for run in runs for latency in run["latencies"])
    elapsed = sum(run["elapsed"] for run in runs)
    cpu = {name: sum(run["cpu"][name] for run in runs) for name in PROCESSES}

    def p99(values: list[float]) -> float:
        values = sorted(values)
        return 1000 * values[min(len(values) - 1, int(len(values) * 0.99))]

    return {
        "cpu_us_per_event": {name: 1e6 * used / len(ordered) for name, used in cpu.items()},
        "cores_busy": sum(cpu.values()) / elapsed,
        "events": len(ordered),
        "achieved_events_per_s": len(ordered) / elapsed,  # below the offered rate: the server saturated
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p99_ms": p99(ordered),
        "p99_ms_by_run": [p99(run["latencies"]) for run in runs],
        "cores_busy_by_run": [sum(run["cpu"].values()) / run["elapsed"] for run in runs],
        "max_ms": 1000 * ordered[-1],
    }


async def run(
    h2load: str,
    streams: int,
    items: int,
    repeat: int,
    rates: list[float],
    seconds: float,
    latency_repeat: int,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-bus-") as tmp:
        root = Path(tmp)
        nats = NatsServer(root / "nats")
        nats.start()
        nats_pid = nats.pid
        assert nats_pid is not None
        try:
            off: list[float] = []
            on: list[float] = []
            for n in range(repeat):  # alternate so drift hits both alike
                async with _demo(root / f"off{n}", None) as (address, _):
                    off.append(await _throughput(address, streams, items))
                async with _demo(root / f"on{n}", nats.url) as (address, _):
                    on.append(await _throughput(address, streams, items))
            latency = []
            for n, rate in enumerate(rates):
                runs = []
                for r in range(latency_repeat):  # fresh servers per run: no backlog carried over
                    async with (
                        _demo(root / f"a{n}-{r}", nats.url, PRODUCER) as a,
                        _demo(root / f"b{n}-{r}", nats.url) as b,
                    ):
                        pids = dict(zip(PROCESSES[:4], (a[1], b[1], nats_pid, os.getpid()), strict=True))
                        runs.append(await _latency(h2load, a[0], b[0], rate, seconds, pids))
                latency.append({"rate": rate, **_summary(runs)})
        finally:
            nats.stop()
    return {
        "streams": streams,
        "items": items,
        "repeat": repeat,
        "bus_off_messages_per_s": statistics.median(off),
        "bus_on_messages_per_s": statistics.median(on),
        "ratio": statistics.median(on) / statistics.median(off),
        "seconds": seconds,
        "latency_repeat": latency_repeat,
        "batch": BATCH,
        "latency": latency,
        "runs": {"off": off, "on": on},
    }


def render(result: dict[str, Any]) -> str:
    rows = []
    for run in result["latency"]:
        cpu = "/".join(f"{run['cpu_us_per_event'][name]:.0f}" for name in PROCESSES)
        rows.append(
            f"| {run['rate']:,.0f} | {run['achieved_events_per_s']:,.0f} | {run['p50_ms']:.1f} "
            f"| {run['p99_ms']:.1f} | {'/'.join(f'{p:.1f}' for p in run['p99_ms_by_run'])} "
            f"| {run['cores_busy']:.2f} | {cpu} |"
        )
    return "\n".join(
        [
            BEGIN,
            "## Event bus (bench/bus.py)",
            "",
            f"Demo ProcessFiles, {result['streams']} streams x {result['items']} items, one event each, "
            f"median of {result['repeat']}; {result['date']}: bus on / off "
            f"**{result['ratio']:.2f}x** ({result['bus_on_messages_per_s']:,.0f} / "
            f"{result['bus_off_messages_per_s']:,.0f} msg/s).",
            "",
            "Yield to watcher: producer items (one bus event each, `bench/_bus_app.py`; h2load calls of "
            f"{result['batch']}) to a WatchFileEvents client of another server, "
            f"{result['latency_repeat']} x {result['seconds']:.0f} s per rate, pooled:",
            "",
            "| events/s offered | achieved | p50 ms | p99 ms | p99 by run | cores busy | µs CPU/event: "
            + "/".join(PROCESSES)
            + " |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "Command: `python -m bench.bus`.",
            END,
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bus")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--rate",
        type=float,
        nargs="+",
        default=[500.0, 1000.0, 2000.0],
        help="events/s offered, --latency-repeat runs each (2,000: the headroom above the goal's 1,000)",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one latency run")
    parser.add_argument("--latency-repeat", type=int, default=5, help="latency runs per rate, pooled")
    args = parser.parse_args(argv if argv is not None else [])
    h2load = ensure_h2load()
    generate()  # the producer's StreamItems service (benchgrpc)
    sys.path.insert(0, str(GEN))
    # the watch client on the servers' loop too: at the offered rate it is one of the busy processes
    with asyncio.Runner(loop_factory=accel.new_event_loop) as runner:
        result = runner.run(
            run(h2load, args.streams, args.items, args.repeat, args.rate, args.seconds, args.latency_repeat)
        )
    result["date"] = datetime.date.today().isoformat()
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    section = render(result)
    replace_section("bus", section)
    print(section)


if __name__ == "__main__":
    main(sys.argv[1:])
