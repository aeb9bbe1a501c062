"""The demo page in Debian's headless Chromium (playwright-core): upload, process, watch, pause.

``demo_page.mjs`` drives the page and reports each step as a JSON line; this test serves the demo
with ``--http-address``, checks what the page showed and what the server did meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from demo.files.v1 import files_pb2, files_pb2_grpc
from tests.e2e.conftest import DEMO_APP, ROOT, ServerProcess, start_server

SCRIPT = Path(__file__).with_name("demo_page.mjs")
CHROMIUM = Path("/usr/bin/chromium")
PLAYWRIGHT = ROOT / "tools" / "node_modules" / "playwright-core"
ARTIFACTS = ROOT / "test-artifacts" / "demo_page"
UPLOAD_LIMIT = 4096
STEP_TIMEOUT = 20.0
SERVING_HTTP = re.compile(r"serving http=(?P<address>\S+:\d+)")
WATCH_CLOSED = "rpc /demo.files.v1.FileService/WatchFileEvents status=CANCELLED"


OpenPage = Callable[[str], Awaitable["PageDriver"]]


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

    async def finish(self) -> None:
        """The last step: no uncaught error in the page, and the driver exits 0."""
        done = await self.step("done")
        assert done["pageErrors"] == []
        assert await asyncio.wait_for(self.process.wait(), 10) == 0

    async def _stderr(self) -> str:
        assert self.process.stderr is not None
        return (await asyncio.wait_for(self.process.stderr.read(), 5)).decode()


@pytest.fixture
def browser_installed() -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make install` (it installs Debian's chromium)"
    assert PLAYWRIGHT.exists(), f"{PLAYWRIGHT} is missing: run `make install` (it runs `npm ci` in tools/)"


@pytest.fixture
async def demo_http(browser_installed: None) -> AsyncIterator[tuple[ServerProcess, str]]:
    server = await start_server(
        "--app",
        DEMO_APP,
        "--http-address",
        "127.0.0.1:0",
        "--grace",
        "2",
        env={"FILES_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)},
    )
    try:
        bound = [match["address"] for line in server.log if (match := SERVING_HTTP.search(line))]
        assert bound, f"the server did not say which HTTP port it bound:\n{''.join(server.log)}"
        yield server, f"http://{bound[0]}"
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


@pytest.fixture
async def open_page(demo_http: tuple[ServerProcess, str], tmp_path: Path) -> AsyncIterator[OpenPage]:
    """``await open_page(mode)``: the page in Chromium, driven through ``demo_page.mjs``'s ``mode``."""
    processes: list[asyncio.subprocess.Process] = []

    async def open_page(mode: str) -> PageDriver:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            "node",
            str(SCRIPT),
            demo_http[1],
            str(ARTIFACTS),
            str(tmp_path / f"chromium-profile-{len(processes)}"),
            mode,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        processes.append(process)
        return PageDriver(process)

    yield open_page
    for process in processes:
        if process.returncode is None:
            process.terminate()  # playwright closes its browser on SIGTERM; SIGKILL would orphan it
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
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
    demo_http: tuple[ServerProcess, str], open_page: OpenPage
) -> None:
    server, _ = demo_http
    page_driver = await open_page("batch")
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
    feed = page["feed"][::-1]  # the page shows the newest first
    assert [event["kind"] for event in feed] == ["file_uploaded"] * 2 + ["file_processed"] * 2
    sequences = [event["sequence"] for event in feed]
    assert sequences == sorted(set(sequences)) and len(sequences) == 4
    assert "uploaded alpha.txt" in feed[0]["text"] and "processed beta.csv: completed" in feed[3]["text"]
    assert not any(page["errors"].values())

    failed = await page_driver.step("batch-error")
    assert failed["errors"]["batch-error"].startswith("INVALID_ARGUMENT: ")

    # the page is still open: only closing its EventSource can end the server's watch
    assert not any(WATCH_CLOSED in line for line in server.log)
    await page_driver.step("paused")
    await wait_for_log(server, WATCH_CLOSED)

    await page_driver.send("stop")
    await page_driver.finish()
    assert "Traceback" not in "".join(server.log)


async def _resumed_after_a_missed_upload(
    demo_http: tuple[ServerProcess, str], open_page: OpenPage, mode: str
) -> tuple[PageDriver, dict[str, Any]]:
    """The page in ``mode`` pauses its feed; once the server ended the watch, ``missed.txt`` is
    uploaded over gRPC; then the page resumes. The driver and the page as it was then."""
    server, _ = demo_http
    page_driver = await open_page(mode)
    await page_driver.step("live")
    await page_driver.step("paused")
    await wait_for_log(server, WATCH_CLOSED)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = files_pb2_grpc.FileServiceStub(channel)
        await stub.UploadFile(files_pb2.UploadFileCommand(name="missed.txt", content=b"x"), timeout=10)
    await page_driver.send("resume")
    return page_driver, await page_driver.step("resumed")


async def test_a_paused_feed_resumes_after_its_last_event_and_misses_none(
    demo_http: tuple[ServerProcess, str], open_page: OpenPage
) -> None:
    page_driver, page = await _resumed_after_a_missed_upload(demo_http, open_page, "resume")
    sequences = [event["sequence"] for event in page["feed"]]
    assert sorted(sequences) == sequences[::-1] and len(set(sequences)) == 2, page["feed"]
    assert "uploaded missed.txt" in page["feed"][0]["text"]
    assert "uploaded first.txt" in page["feed"][1]["text"]
    assert sorted(file["name"] for file in page["files"]) == ["first.txt", "missed.txt"]
    await page_driver.finish()


async def test_a_feed_paused_on_an_empty_server_resumes_from_the_first_event(
    demo_http: tuple[ServerProcess, str], open_page: OpenPage
) -> None:
    page_driver, page = await _resumed_after_a_missed_upload(demo_http, open_page, "resume-empty")
    assert [event["sequence"] for event in page["feed"]] == [1], page["feed"]
    assert "uploaded missed.txt" in page["feed"][0]["text"]
    await page_driver.finish()
