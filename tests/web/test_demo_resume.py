"""The demo's watch over SSE opens with where its feed starts, so a reconnect from there misses nothing
even when the connection was lost before the first event."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import grpc
import pytest

from demo.files.v1 import files_pb2, files_pb2_grpc
from examples.files import build_demo
from tests.web.app import Script
from tests.web.conftest import WATCH, Served
from tests.web.test_sse import events

pytestmark = pytest.mark.e2e


async def test_a_watch_opens_with_a_subscribed_event_and_resumes_from_it(tmp_path: Path) -> None:
    app = build_demo(tmp_path).app
    app.settings = dataclasses.replace(app.settings, http_address="127.0.0.1:0")
    async with app.serve("127.0.0.1:0") as running, grpc.aio.insecure_channel(running.address) as channel:
        stub = files_pb2_grpc.FileServiceStub(channel)

        async def upload(name: str) -> str:
            reply = await stub.UploadFile(files_pb2.UploadFileCommand(name=name, content=b"x\n"))
            return str(reply.file_id)

        await upload("1.txt")
        await upload("2.txt")
        served = Served(running, Script())
        async with events(served, WATCH) as stream:  # lost before its first event
            opening = await stream.next()
        assert opening["event"] == "subscribed" and opening["id"] == "2"
        assert json.loads(opening["data"]) == {"afterSequence": "2"}
        third = await upload("3.txt")  # while nobody listens
        async with events(served, WATCH, "{}", f"last-event-id: {opening['id']}") as stream:
            assert (await stream.next())["event"] == "subscribed"
            event = await stream.next()
        assert event["id"] == "3" and json.loads(event["data"])["fileId"] == third
