"""Real processes: ``python -m server`` on a free loopback port, driven by real clients."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / "tools" / "node_modules" / ".bin" / "buf"
SERVING = re.compile(r"serving address=(?P<address>\S+:\d+)")
# the demo file service: `python -m server` serves no app unless told which
DEMO_APP = "examples.files:create_app"


class ServerProcess:
    """A ``python -m server`` child process and the address it reported."""

    def __init__(self, process: asyncio.subprocess.Process, address: str) -> None:
        self.process = process
        self.address = address
        self.log: list[str] = []

    async def terminate(self, timeout: float) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout)


async def start_server(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "--address",
        "127.0.0.1:0",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert process.stderr is not None
    lines: list[str] = []

    async def read_until_serving() -> str:
        assert process.stderr is not None
        while line := (await process.stderr.readline()).decode():
            lines.append(line)
            if match := SERVING.search(line):
                return match["address"]
        raise AssertionError("server exited before serving:\n" + "".join(lines))

    address = await asyncio.wait_for(read_until_serving(), 30)
    server = ServerProcess(process, address)
    server.log = lines

    async def drain() -> None:
        assert process.stderr is not None
        while line := (await process.stderr.readline()).decode():
            lines.append(line)

    server.drain_task = asyncio.create_task(drain())  # type: ignore[attr-defined]
    return server


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every demo server process started by a test keeps its data in the test's own directory."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("FILES_DATA_DIR", str(data_dir))
    return data_dir


@pytest.fixture
async def server_process() -> AsyncIterator[ServerProcess]:
    server = await start_server("--app", DEMO_APP, "--grace", "2")
    try:
        yield server
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


async def buf_curl(*args: str, timeout: float = 20) -> tuple[int, str, str]:
    assert BUF.exists(), f"{BUF} is missing: run `make install` (it runs `npm ci` in tools/)"
    process = await asyncio.create_subprocess_exec(
        str(BUF),
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
