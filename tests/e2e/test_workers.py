"""``python -m server --workers 2``: two processes serve one port, and all exit 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.conftest import DEMO_APP, ROOT

SERVING = re.compile(r"serving address=(?P<address>\S+:\d+)")
BUS = re.compile(r"event bus nats-server pid=(?P<pid>\d+)")
EXITED = re.compile(r"worker pid=(?P<pid>\d+) exited code=(?P<code>-?\d+)")


def listening_inodes(port: int) -> set[str]:
    """Socket inodes in LISTEN state on ``port`` (IPv4 and IPv6 tables)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def test_two_workers_serve_one_port_and_all_exit_zero_on_sigterm(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "--app",
        DEMO_APP,
        "--workers",
        "2",
        "--address",
        "127.0.0.1:0",
        "--grace",
        "1",
        "--nats-store",
        str(tmp_path / "nats"),
        cwd=ROOT,
        env={**os.environ, "FILES_DATA_DIR": str(tmp_path)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log: list[str] = []
    try:

        async def read_until_two_serving() -> set[str]:
            assert process.stderr is not None
            addresses: list[str] = []
            while len(addresses) < 2:
                line = (await process.stderr.readline()).decode()
                if not line:
                    raise AssertionError("supervisor exited early:\n" + "".join(log))
                log.append(line)
                if match := SERVING.search(line):
                    addresses.append(match["address"])
            return set(addresses)

        addresses = await asyncio.wait_for(read_until_two_serving(), 30)
        assert len(addresses) == 1, f"the workers serve different addresses: {addresses}"
        address = addresses.pop()
        port = int(address.rsplit(":", 1)[1])

        bus = {int(m["pid"]) for line in log if (m := BUS.search(line))}  # the supervisor's nats-server
        workers = [pid for pid in children(process.pid) if pid not in bus]
        assert len(workers) == 2 and len(bus) == 1
        listening = listening_inodes(port)
        owners = {pid for pid in workers if socket_inodes(pid) & listening}
        assert owners == set(workers), "each worker must hold its own listening socket on the port"
        assert len(listening) >= 2

        for _ in range(4):  # new connections, spread by the kernel; each one sees the same health
            async with grpc.aio.insecure_channel(address) as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
                assert reply.status == health_pb2.HealthCheckResponse.SERVING

        process.send_signal(signal.SIGTERM)

        async def drain() -> None:
            assert process.stderr is not None
            while line := (await process.stderr.readline()).decode():
                log.append(line)

        await asyncio.wait_for(drain(), 15)
        assert await asyncio.wait_for(process.wait(), 15) == 0
        exits = {int(m["pid"]): int(m["code"]) for line in log if (m := EXITED.search(line))}
        assert exits == {pid: 0 for pid in workers}, "".join(log)
        assert "Traceback" not in "".join(log)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
