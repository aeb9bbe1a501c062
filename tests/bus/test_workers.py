"""``--workers 2`` with no ``--nats-url``: the supervisor starts one nats-server, both workers connect
their broker to it, and it is stopped after the workers."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import pytest

from server.app import App
from tests.bus.test_server import bus_app
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.timeout(30)

SERVING = re.compile(r"serving address=\S+ services=\S+ bus=(?P<url>\S+)")
BUS = re.compile(r"event bus nats-server pid=(?P<pid>\d+) url=(?P<url>\S+)")


def app_with_a_broker() -> App:
    """The --app of the workers: a broker whose own URL is nowhere, so only the supervisor's can work."""
    from cqrs.bus import BusConfig

    return bus_app(BusConfig(), None)[0]


async def test_two_workers_share_the_supervisors_nats_server_which_stops_after_them(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CQRS_GRPC_NATS_URL"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "--app",
        "tests.bus.test_workers:app_with_a_broker",
        "--workers",
        "2",
        "--address",
        "127.0.0.1:0",
        "--grace",
        "1",
        "--nats-store",
        str(tmp_path / "nats"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log: list[str] = []

    def found(pattern: re.Pattern[str], group: str) -> list[str]:
        return [m[group] for m in map(pattern.search, log) if m]

    async def read(serving: int | None = None) -> None:
        """The log until ``serving`` workers said so (None: to its end)."""
        assert process.stderr is not None
        while serving is None or len(found(SERVING, "url")) < serving:
            line = (await process.stderr.readline()).decode()
            if not line:
                return
            log.append(line)

    try:
        await asyncio.wait_for(read(serving=2), 20)
        [pid], [url] = found(BUS, "pid"), found(BUS, "url")
        assert found(SERVING, "url") == [url, url], "".join(log)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(read(), 15)
        assert await asyncio.wait_for(process.wait(), 15) == 0, "".join(log)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "Traceback" not in "".join(log)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()
    assert (tmp_path / "nats" / "jetstream").is_dir()
