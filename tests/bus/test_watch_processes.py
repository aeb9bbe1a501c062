"""The demo as real processes on a real bus: the issue's scenario under ``--workers 2`` (every
watcher sees every upload with one sequence), and guarantee 1: a message a client received means
its events are in JetStream, so a ``kill -9`` of the worker right after loses none of them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import grpc
import nats
import pytest

from cqrs.bus import BusConfig, NatsServer
from demo.files.v1 import files_pb2, files_pb2_grpc
from tests.bus.helpers import until
from tests.e2e.conftest import DEMO_APP, SERVING, ServerProcess, start_server

pytestmark = pytest.mark.timeout(60)


def _stub(channel: grpc.aio.Channel) -> files_pb2_grpc.FileServiceStub:
    return files_pb2_grpc.FileServiceStub(channel)


async def _stop(server: ServerProcess) -> None:
    if server.process.returncode is None:
        server.process.kill()
        await server.process.wait()


async def test_three_watchers_of_two_workers_see_all_six_uploads_with_one_sequence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CQRS_GRPC_NATS_URL", raising=False)  # the supervisor starts the bus
    env = {"FILES_DATA_DIR": str(tmp_path / "data")}
    args = ["--app", DEMO_APP, "--workers", "2", "--grace", "1", "--nats-store", str(tmp_path / "nats")]
    server = await start_server(*args, env=env)
    try:
        await until(lambda: sum(bool(SERVING.search(line)) for line in server.log) == 2, 20, "both serve")
        channels = [grpc.aio.insecure_channel(server.address) for _ in range(3)]
        watches = []
        for channel in channels:
            watch = _stub(channel).WatchFileEvents(files_pb2.WatchFileEventsQuery())
            assert ("x-subscribed", "true") in tuple(await watch.initial_metadata())
            watches.append(watch)
        uploaded = []
        for n in range(6):
            async with grpc.aio.insecure_channel(server.address) as fresh:
                reply = await _stub(fresh).UploadFile(
                    files_pb2.UploadFileCommand(name=f"{n}.txt", content=b"x")
                )
                uploaded.append(reply.file_id)
        seen = []
        for watch in watches:
            events = [await asyncio.wait_for(watch.read(), 10) for _ in range(6)]
            seen.append([(e.sequence, e.file_id) for e in events])
            watch.cancel()
        for channel in channels:
            await channel.close()
        assert [file_id for _, file_id in seen[0]] == uploaded
        assert seen[0] == seen[1] == seen[2]
        assert [sequence for sequence, _ in seen[0]] == sorted({sequence for sequence, _ in seen[0]})
        assert await server.terminate(15) == 0
    finally:
        await _stop(server)


async def _stored(url: str, file_id: str) -> list[dict[str, object]]:
    """The FileEventNotice payloads of ``file_id`` in the stream, read from JetStream directly."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(f"{BusConfig().prefix}.*.files.{file_id}", ordered_consumer=True)
        payloads = []
        while True:
            try:
                msg = await sub.next_msg(timeout=1)
            except nats.errors.TimeoutError:
                return payloads
            payloads.append(json.loads(msg.data)["payload"])
    finally:
        await nc.close()


async def test_a_message_the_client_received_has_its_events_in_jetstream_despite_kill_9(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    env = {"FILES_DATA_DIR": str(tmp_path / "data")}
    args = ["--app", DEMO_APP, "--nats-url", nats_server.url]
    server = await start_server(*args, env=env)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            upload = await _stub(channel).UploadFile(
                files_pb2.UploadFileCommand(name="a.txt", content=b"a\n")
            )
            call = _stub(channel).ProcessFiles(
                files_pb2.ProcessFilesCommand(file_ids=[upload.file_id, "gate"])
            )
            first = await call.read()
            os.kill(server.process.pid, signal.SIGKILL)  # right after the first item arrived
            await asyncio.wait_for(server.process.wait(), 10)
        assert server.process.returncode == -signal.SIGKILL
        stored = await _stored(nats_server.url, upload.file_id)
        assert [(p["kind"], p["status"]) for p in stored] == [
            ("file_uploaded", ""),
            ("file_processed", "completed"),
        ]
        assert first.file_id == upload.file_id
    finally:
        await _stop(server)
