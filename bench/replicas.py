"""One demo replica against two, over one PostgreSQL and one nats-server, under the same h2load load.

Each run starts a fresh database, the replicas (``python -m server ... --database``), then h2load: with
one replica, one h2load process with every connection; with two, two h2load processes started together,
each with half the connections on its replica. Workloads: ``UploadFile`` (64 B: content, file row,
audit and outbox in PostgreSQL) and ``GetFileStatus`` (a read). Every upload must be in the database
afterwards. Reported: requests/s for each and the ratio two/one. Results: ``bench/results/replicas.json``
and the ``replicas`` section of ``BENCHMARKS.md``.

    python -m bench.replicas [--requests 4000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc
import psycopg

from bench._sections import markers, replace_section
from bench._tools import ensure_h2load
from cqrs.bus import NatsServer
from cqrs.bus.server import free_port
from demo.files.v1 import files_pb2, files_pb2_grpc
from examples.files.pgserver import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "replicas.json"
BEGIN, END = markers("replicas")
SERVICE = "/demo.files.v1.FileService/"
CONNECTIONS = 4
STREAMS_PER_CONNECTION = 10
_FINISHED = re.compile(r"finished in ([\d.]+)(m?s)")
_REQS = re.compile(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded")


def _framed(message: bytes, folder: Path, name: str) -> Path:
    path = folder / f"{name}.bin"
    path.write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
    return path


def _replica(database: str, nats_url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = [sys.executable, "-m", "server", "--app", "examples.files:create_app",
            "--address", f"127.0.0.1:{port}", "--database", database, "--nats-url", nats_url,
            "--log-level", "warning"]  # fmt: skip
    env = {**os.environ, "FILES_DATA_DIR": str(data_dir)}
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, port


async def _ready(port: int) -> str:
    """Wait (bounded) until the replica answers; a file id uploaded through it."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 60)
        stub = files_pb2_grpc.FileServiceStub(channel)
        info = await stub.UploadFile(files_pb2.UploadFileCommand(name="w.txt", content=b"warm"), timeout=30)
        return str(info.file_id)


def _h2load(h2load: str, port: int, method: str, body: Path, requests: int, connections: int) -> list[str]:
    return [h2load, "-n", str(requests), "-c", str(connections), "-m", str(STREAMS_PER_CONNECTION), "-t", "1",
            "-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers",
            f"http://127.0.0.1:{port}{SERVICE}{method}"]  # fmt: skip


def _parse(text: str, requests: int) -> float:
    finished, reqs = _FINISHED.search(text), _REQS.search(text)
    if not (finished and reqs) or int(reqs[3]) != requests:
        raise SystemExit(f"bench.replicas: h2load did not complete {requests} requests:\n{text}")
    return float(finished[1]) / (1000.0 if finished[2] == "ms" else 1.0)


def _load(h2load: str, ports: list[int], method: str, body: Path, requests: int) -> float:
    """requests/s of ``requests`` spread evenly over ``ports``, one h2load process each, at once."""
    share = requests // len(ports)
    procs = [
        subprocess.Popen(
            _h2load(h2load, port, method, body, share, CONNECTIONS // len(ports)),
            stdout=subprocess.PIPE,
            text=True,
        )
        for port in ports
    ]
    seconds = [_parse(proc.communicate(timeout=300)[0], share) for proc in procs]
    return share * len(ports) / max(seconds)


def _one_run(
    h2load: str, pg: PostgresServer, nats: NatsServer, replicas: int, requests: int, folder: Path
) -> dict[str, float]:
    name = f"bench_{replicas}_{os.getpid()}_{free_port()}"
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    database = pg.url(name)
    started = [_replica(database, nats.url, folder / f"r{name}-{i}") for i in range(replicas)]
    try:
        ports = [port for _, port in started]
        file_id = ""
        for port in ports:
            file_id = asyncio.run(_ready(port))
        upload = _framed(
            files_pb2.UploadFileCommand(name="b.txt", content=b"x" * 64).SerializeToString(), folder, "up"
        )
        status = _framed(files_pb2.GetFileStatusQuery(file_id=file_id).SerializeToString(), folder, "st")
        result = {
            "upload_per_s": _load(h2load, ports, "UploadFile", upload, requests),
            "status_per_s": _load(h2load, ports, "GetFileStatus", status, requests),
        }
        with psycopg.connect(database) as conn:
            row = conn.execute("SELECT count(*) FROM files").fetchone()
        stored = int(row[0]) if row else 0
        if stored != requests + replicas:
            raise SystemExit(f"bench.replicas: {stored} files stored, expected {requests + replicas}")
        return result
    finally:
        for process, _ in started:
            process.terminate()
            process.wait(20)


def run(requests: int, repeat: int) -> dict[str, Any]:
    h2load = ensure_h2load()
    folder = Path(tempfile.mkdtemp(prefix="cqrs-grpc-bench-replicas-"))
    pg_folder = Path(tempfile.mkdtemp(prefix="cqrs-grpc-bench-pg-"))  # its own: handed to the postgres user
    pg = PostgresServer(pg_folder)
    nats = NatsServer(folder / "nats")
    pg.start()
    nats.start()
    runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    try:
        for _ in range(repeat):  # alternate so drift hits both alike
            for replicas in (1, 2):
                runs[replicas].append(_one_run(h2load, pg, nats, replicas, requests, folder))
    finally:
        nats.stop()
        pg.stop(mode="immediate")
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(pg_folder, ignore_errors=True)
    median = {
        n: {key: statistics.median(r[key] for r in samples) for key in ("upload_per_s", "status_per_s")}
        for n, samples in runs.items()
    }
    return {
        "requests": requests,
        "repeat": repeat,
        "cpus": os.cpu_count(),
        "median": median,
        "ratio_upload": median[2]["upload_per_s"] / median[1]["upload_per_s"],
        "ratio_status": median[2]["status_per_s"] / median[1]["status_per_s"],
    }


def section(result: dict[str, Any]) -> str:
    one, two = result["median"][1], result["median"][2]
    return "\n".join(
        [
            BEGIN,
            "## Replicas (PostgreSQL + NATS)",
            "",
            f"h2load, {CONNECTIONS} connections x {STREAMS_PER_CONNECTION} streams, "
            f"{result['requests']} requests, "
            f"median of {result['repeat']}, {result['cpus']} CPUs shared with PostgreSQL, NATS and h2load "
            "(`python -m bench.replicas`).",
            "",
            "| RPC | 1 replica (req/s) | 2 replicas (req/s) | 2 / 1 |",
            "|---|---|---|---|",
            f"| UploadFile (64 B) | {one['upload_per_s']:.0f} | {two['upload_per_s']:.0f} | "
            f"**{result['ratio_upload']:.2f}x** |",
            f"| GetFileStatus | {one['status_per_s']:.0f} | {two['status_per_s']:.0f} | "
            f"**{result['ratio_status']:.2f}x** |",
            END,
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    result = run(args.requests, args.repeat)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    replace_section("replicas", section(result))
    print(section(result))


if __name__ == "__main__":
    main()
