"""SSE with curl -N, as an EventSource uses it: a client that leaves, a resume, a drain, the page's files."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.web.conftest import CURL, PROCESS, WATCH, Served, ServeFactory, run

pytestmark = pytest.mark.e2e


class EventStream:
    """A ``curl -N`` reading one SSE response: its events as (fields) dicts, read as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def next(self, timeout: float = 10) -> dict[str, str]:
        assert self.process.stdout is not None
        fields: dict[str, str] = {}
        while True:
            line = (await asyncio.wait_for(self.process.stdout.readline(), timeout)).decode()
            if not line:
                raise AssertionError(f"the stream ended; got so far {fields}")
            if line == "\n" and fields:
                return fields
            key, _, value = line.rstrip("\n").partition(": ")
            fields[key] = value

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


@asynccontextmanager
async def events(
    served: Served, method: str, message: str = "{}", *headers: str
) -> AsyncIterator[EventStream]:
    query = urllib.parse.urlencode({"message": message})
    args = [arg for header in ("accept: text/event-stream", *headers) for arg in ("-H", header)]
    process = await asyncio.create_subprocess_exec(
        CURL, "-s", "-N", *args, f"{served.url}/{method}?{query}", stdout=asyncio.subprocess.PIPE
    )
    stream = EventStream(process)
    try:
        yield stream
    finally:
        await stream.close()


async def test_a_client_that_leaves_closes_the_handler(served: Served) -> None:
    served.script.publish()
    async with events(served, WATCH) as stream:
        assert (await stream.next())["id"] == "1"
        await asyncio.wait_for(served.script.started.wait(), 10)
        assert served.script.closed == []
    await asyncio.wait_for(served.script.ended.wait(), 10)  # curl was killed: the finally ran
    assert served.script.closed == ["WatchFileEvents"]


@pytest.mark.parametrize("resume", ["header", "query"])
async def test_a_reconnect_with_last_event_id_misses_nothing(served: Served, resume: str) -> None:
    script = served.script
    script.publish(2)
    async with events(served, WATCH) as stream:
        seen = [(await stream.next())["id"] for _ in range(2)]
    script.publish(2)  # while nobody listens
    if resume == "header":
        reconnect = events(served, WATCH, "{}", f"last-event-id: {seen[-1]}")
    else:  # a fresh EventSource cannot set the header: it names the last id in its URL
        reconnect = events(served, f"{WATCH}?lastEventId={seen[-1]}&")
    async with reconnect as stream:
        seen += [(await stream.next())["id"] for _ in range(2)]
        script.publish()
        event = await stream.next()
    seen.append(event["id"])
    assert seen == ["1", "2", "3", "4", "5"]
    assert json.loads(event["data"])["fileId"] == "f5" and "event" not in event


async def test_a_drain_ends_open_streams_with_unavailable(serve: ServeFactory) -> None:
    async with (
        serve(grace=0.5) as served,
        events(served, WATCH) as watch,
        events(served, PROCESS, '{"fileIds": ["a", "hang"]}') as hang,
    ):
        assert json.loads((await hang.next())["data"])["fileId"] == "a"
        await asyncio.wait_for(served.script.started.wait(), 10)
        await served.running.stop()
        for stream in (watch, hang):  # one ends itself on the drain signal, one is ended after the grace
            end = await stream.next()
            assert end["event"] == "end" and json.loads(end["data"])["code"] == "UNAVAILABLE"
    assert sorted(served.script.closed) == ["ProcessFiles", "WatchFileEvents"]


async def test_static_files_and_sse_by_post(serve: ServeFactory, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<h1>files</h1>")
    async with serve(static=tmp_path) as served:
        code, out, _ = await run(CURL, "-s", "-f", f"{served.url}/")
        assert (code, out) == (0, "<h1>files</h1>")
        post = (
            "-H",
            "accept: text/event-stream",
            "-H",
            "content-type: application/json",
            "-d",
            '{"fileIds": ["p"]}',
        )
        code, out, _ = await run(CURL, "-s", "-N", *post, f"{served.url}/{PROCESS}")
        item, end = out.strip().split("\n\n")
        assert item.startswith("id: 1\ndata: {") and end == 'event: end\ndata: {"code": "OK"}'
