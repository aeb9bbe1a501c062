"""The demo page in Debian's headless Chromium (playwright-core): upload, process, watch, pause.

``demo_page.mjs`` drives the page and reports each step as a JSON line; this test serves the demo
with ``--http-address``, checks what the page showed and what the server did meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DEMO_APP, ROOT, ServerProcess, start_server

SCRIPT = Path(__file__).with_name("demo_page.mjs")
CHROMIUM = Path("/usr/bin/chromium")
PLAYWRIGHT = ROOT / "tools" / "node_modules" / "playwright-core"
ARTIFACTS = ROOT / "test-artifacts" / "demo_page"
UPLOAD_LIMIT = 4096
STEP_TIMEOUT = 20.0
WATCH_CLOSED = "rpc /demo.files.v1.FileService/WatchFileEvents status=CANCELLED"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PageDriver:
    """The node process driving the page: its JSON steps, and commands sent to it on stdin."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def step(self, name: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), STEP_TIMEOUT)
        assert line, f"the page driver exited before {name!r}: {await self._stderr()}"
        report: dict[str, Any] = json.loads(line)
        assert report["step"] == name, f"expected step {name!r}, got {report}"
        return report

    async def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()

    async def _stderr(self) -> str:
        assert self.process.stderr is not None
        return (await asyncio.wait_for(self.process.stderr.read(), 5)).decode()


@pytest.fixture
def browser_installed() -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make install` (it installs Debian's chromium)"
    assert PLAYWRIGHT.exists(), f"{PLAYWRIGHT} is missing: run `make install` (it runs `npm ci` in tools/)"


@pytest.fixture
async def demo_http(browser_installed: None) -> AsyncIterator[tuple[ServerProcess, str]]:
    address = f"127.0.0.1:{free_port()}"
    server = await start_server(
        "--app",
        DEMO_APP,
        "--http-address",
        address,
        "--grace",
        "2",
        env={"FILES_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)},
    )
    try:
        yield server, f"http://{address}"
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


@pytest.fixture
async def page_driver(demo_http: tuple[ServerProcess, str]) -> AsyncIterator[PageDriver]:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    process = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPT),
        demo_http[1],
        str(ARTIFACTS),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield PageDriver(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_for_log(server: ServerProcess, text: str, timeout: float = 10) -> None:
    async def seen() -> None:
        while not any(text in line for line in server.log):  # noqa: ASYNC110 - a log, not an event
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(seen(), timeout)
    except TimeoutError:
        raise AssertionError(f"the server never logged {text!r}:\n{''.join(server.log)}") from None


async def test_the_page_uploads_two_files_processes_them_and_lists_the_events(
    demo_http: tuple[ServerProcess, str], page_driver: PageDriver
) -> None:
    server, _ = demo_http
    await page_driver.step("live")

    refused = await page_driver.step("upload-error")
    assert "RESOURCE_EXHAUSTED" in refused["errors"]["files-error"]
    assert f"the upload limit is {UPLOAD_LIMIT} bytes" in refused["errors"]["files-error"]

    page = await page_driver.step("processed")
    print(f"\nscreenshot of the demo page: {page['screenshot']}")
    assert (await asyncio.to_thread(Path(page["screenshot"]).stat)).st_size > 0
    assert [(bar["name"], bar["value"], bar["max"], bar["status"]) for bar in page["bars"]] == [
        ("alpha.txt", 100, 100, "completed"),
        ("beta.csv", 100, 100, "completed"),
    ]
    assert page["overall"] == {"value": 2, "max": 2}
    assert [file["status"] for file in page["files"]] == ["completed", "completed"]
    feed = sorted(page["feed"], key=lambda event: event["sequence"])
    assert [event["kind"] for event in feed] == ["file_uploaded"] * 2 + ["file_processed"] * 2
    assert [event["sequence"] for event in feed] == [1, 2, 3, 4]
    assert "uploaded alpha.txt" in feed[0]["text"] and "processed beta.csv: completed" in feed[3]["text"]
    assert not any(page["errors"].values())

    failed = await page_driver.step("batch-error")
    assert failed["errors"]["batch-error"].startswith("INVALID_ARGUMENT: ")

    # the page is still open: only closing its EventSource can end the server's watch
    assert not any(WATCH_CLOSED in line for line in server.log)
    await page_driver.step("paused")
    await wait_for_log(server, WATCH_CLOSED)

    await page_driver.send("stop")
    done = await page_driver.step("done")
    assert done["pageErrors"] == []
    assert await asyncio.wait_for(page_driver.process.wait(), 10) == 0
    assert "Traceback" not in "".join(server.log)
