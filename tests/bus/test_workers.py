"""``--workers 2`` with no ``--nats-url``: the supervisor starts one nats-server, both workers connect
their broker to it, and it is stopped after the workers."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cqrs.bus import NatsServer
from server.app import App
from server.workers import MAX_BUS_RESTARTS, _KeepBusUp, _wait
from tests.bus.test_server import bus_app
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.timeout(30)

SERVING = re.compile(r"serving address=\S+ services=\S+ bus=(?P<url>\S+)")
ADDRESS = re.compile(r"supervising workers=\d+ pids=\S+ address=(?P<address>\S+)")
BUS = re.compile(r"event bus nats-server pid=(?P<pid>\d+) url=(?P<url>\S+)")


def app_with_a_broker() -> App:
    """The --app of the workers: a broker whose own URL is nowhere, so only the supervisor's can work."""
    from cqrs.bus import BusConfig

    return bus_app(BusConfig(), None)[0]


class Supervisor:
    """``python -m server --workers 2`` of ``app_with_a_broker`` with no NATS URL, and its log."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log: list[str] = []

    @classmethod
    async def start(cls, store: Path) -> Supervisor:
        env = {k: v for k, v in os.environ.items() if k != "CQRS_GRPC_NATS_URL"}
        argv = ["--app", "tests.bus.test_workers:app_with_a_broker", "--workers", "2"]
        argv += ["--address", "127.0.0.1:0", "--grace", "1", "--nats-store", str(store)]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            *argv,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    def found(self, pattern: re.Pattern[str], group: str) -> list[str]:
        return [m[group] for m in map(pattern.search, self.log) if m]

    async def read_until(self, done: Callable[[], bool] = lambda: False, timeout: float = 20) -> None:
        """Read the log until ``done()`` (default: its end)."""

        async def read() -> None:
            assert self.process.stderr is not None
            while not done():
                line = (await self.process.stderr.readline()).decode()
                if not line:
                    return
                self.log.append(line)

        await asyncio.wait_for(read(), timeout)

    async def stop(self) -> int:
        """SIGTERM, then its exit code once the log has ended."""
        self.process.send_signal(signal.SIGTERM)
        await self.read_until(timeout=15)
        return await asyncio.wait_for(self.process.wait(), 15)

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def test_two_workers_share_the_supervisors_nats_server_which_stops_after_them(tmp_path: Path) -> None:
    supervisor = await Supervisor.start(tmp_path / "nats")
    try:
        await supervisor.read_until(lambda: len(supervisor.found(SERVING, "url")) == 2)
        [pid], [url] = supervisor.found(BUS, "pid"), supervisor.found(BUS, "url")
        assert supervisor.found(SERVING, "url") == [url, url], "".join(supervisor.log)
        assert await supervisor.stop() == 0, "".join(supervisor.log)
    finally:
        await supervisor.kill()
    assert "Traceback" not in "".join(supervisor.log)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()
    assert (tmp_path / "nats" / "jetstream").is_dir()


async def test_a_killed_nats_server_is_started_again_on_its_port_and_the_workers_serve_again(
    tmp_path: Path,
) -> None:
    supervisor = await Supervisor.start(tmp_path / "nats")
    try:
        await supervisor.read_until(lambda: len(supervisor.found(SERVING, "url")) == 2)
        address = supervisor.found(ADDRESS, "address")[0]
        [pid], [url] = supervisor.found(BUS, "pid"), supervisor.found(BUS, "url")
        os.kill(int(pid), signal.SIGKILL)
        await supervisor.read_until(lambda: len(supervisor.found(BUS, "pid")) == 2)
        assert supervisor.found(BUS, "url") == [url, url]  # same port (and store): the workers reconnect
        assert supervisor.found(BUS, "pid")[1] != pid
        async with grpc.aio.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            await until_serving(health)
        assert await supervisor.stop() == 0, "".join(supervisor.log)
    finally:
        await supervisor.kill()
    assert "exited on its own" in "".join(supervisor.log)


async def until_serving(health: health_pb2_grpc.HealthStub, timeout: float = 10) -> None:
    """Wait until health answers SERVING (the bus is reachable again)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return
        assert asyncio.get_running_loop().time() < deadline, "health never became SERVING"
        await asyncio.sleep(0.1)


def test_a_nats_server_that_keeps_dying_stops_the_workers_and_the_supervisor_exits_1(tmp_path: Path) -> None:
    bus = NatsServer(tmp_path / "nats")
    bus.start()
    keep_up = _KeepBusUp(bus)
    try:
        for _ in range(MAX_BUS_RESTARTS):
            _kill_9(bus)
            assert keep_up() and bus.running
        _kill_9(bus)
        assert not keep_up()
    finally:
        bus.stop()
    drains = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); print(); time.sleep(30)"
    worker = subprocess.Popen([sys.executable, "-c", drains], stdout=subprocess.PIPE)  # drains on SIGTERM: 0
    assert worker.stdout is not None and worker.stdout.readline() == b"\n"  # its handler is in place
    try:
        assert _wait([worker], stopping=lambda: False, check=lambda: False) == 1
    finally:
        worker.kill()
        worker.communicate()
    assert worker.returncode == 0


def _kill_9(bus: NatsServer) -> None:
    assert bus.pid is not None
    os.kill(bus.pid, signal.SIGKILL)
    while bus.running:
        time.sleep(0.01)
