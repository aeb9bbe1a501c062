"""The scripted app served on a free gRPC port and a free HTTP port, and the real clients' commands."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from server.app import RunningServer
from server.settings import ServerSettings
from tests.web.app import Script, create_app

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / "tools" / "node_modules" / ".bin" / "buf"
NODE_CLIENT = ROOT / "tools" / "connect_call.mjs"
IMAGE = ROOT / "gen" / "protos.binpb"
CURL = shutil.which("curl") or "curl"
PROCESS = "demo.files.v1.FileService/ProcessFiles"
WATCH = "demo.files.v1.FileService/WatchFileEvents"
STATUS = "demo.files.v1.FileService/GetFileStatus"


class Served:
    """A running scripted app: its script, and the base URL of its HTTP port."""

    def __init__(self, running: RunningServer, script: Script) -> None:
        self.running = running
        self.script = script
        self.url = f"http://127.0.0.1:{running.http_port}"


ServeFactory = Callable[..., AbstractAsyncContextManager[Served]]


@pytest.fixture
def serve() -> ServeFactory:
    """``async with serve(**settings) as served``: the scripted app with those ServerSettings."""
    import contextlib

    @contextlib.asynccontextmanager
    async def serving(static: Path | None = None, **settings: object) -> AsyncIterator[Served]:
        script = Script()
        options = {"http_address": "127.0.0.1:0", "grace": 5.0, **settings}
        app = create_app(script, ServerSettings(**options))  # type: ignore[arg-type]
        if static is not None:
            app.serve_static(static)
        async with app.serve("127.0.0.1:0") as running:
            yield Served(running, script)

    return serving


@pytest.fixture
async def served(serve: ServeFactory) -> AsyncIterator[Served]:
    async with serve() as running:
        yield running


async def run(
    *argv: str | Path, timeout: float = 30, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run a client to its end: exit code, stdout, stderr."""
    import os

    process = await asyncio.create_subprocess_exec(
        *map(str, argv),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode("latin-1"), err.decode()
