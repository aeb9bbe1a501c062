"""SIGTERM with 50 streams in flight: health flips at once, finite streams finish, watchers end, nothing lost."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from demo.files.v1 import files_pb2, files_pb2_grpc
from tests.e2e.conftest import DEMO_APP, start_server

GRACE = 8.0
PROCESSORS, WATCHERS, IDS_PER_STREAM = 40, 10, 3
FILE_BYTES = 4 << 20  # big enough that processing one id takes real time, so streams are in flight


async def _read_all(call: grpc.aio.UnaryStreamCall) -> tuple[list[object], grpc.StatusCode]:  # type: ignore[type-arg]
    messages: list[object] = []
    try:
        while (message := await call.read()) is not grpc.aio.EOF:
            messages.append(message)
    except grpc.aio.AioRpcError as error:
        return messages, error.code()
    return messages, await call.code()


async def test_sigterm_drains_50_streams_and_loses_no_audit_row(_data_dir: Path) -> None:
    server = await start_server(
        "--app", DEMO_APP, "--grace", str(GRACE), env={"FILES_MAX_UPLOAD_BYTES": str(FILE_BYTES * 2)}
    )
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = files_pb2_grpc.FileServiceStub(channel)
            content = (b"a line of text\n" * (FILE_BYTES // 15 + 1))[:FILE_BYTES]
            info = await stub.UploadFile(files_pb2.UploadFileCommand(name="big.txt", content=content))

            health = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            assert (await health.read()).status == health_pb2.HealthCheckResponse.SERVING
            watchers = [stub.WatchFileEvents(files_pb2.WatchFileEventsQuery()) for _ in range(WATCHERS)]
            for watcher in watchers:
                await watcher.initial_metadata()  # subscribed
            command = files_pb2.ProcessFilesCommand(file_ids=[info.file_id] * IDS_PER_STREAM)
            processors = [stub.ProcessFiles(command) for _ in range(PROCESSORS)]
            firsts = [await call.read() for call in processors]  # every stream is now in flight
            assert all(first.status == "completed" for first in firsts)

            loop = asyncio.get_running_loop()
            server.process.terminate()
            terminated_at = loop.time()
            update = await asyncio.wait_for(health.read(), 2)
            assert update.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert loop.time() - terminated_at < 1.0
            assert await health.read() is grpc.aio.EOF  # the endless health Watch does not hold the drain

            finished = await asyncio.gather(*(_read_all(call) for call in processors))
            for rest, code in finished:
                assert code is grpc.StatusCode.OK
                assert len(rest) == IDS_PER_STREAM - 1
            delivered = PROCESSORS * IDS_PER_STREAM
            watched = await asyncio.gather(*(_read_all(watcher) for watcher in watchers))
            for _, code in watched:
                assert code is grpc.StatusCode.UNAVAILABLE  # documented end of an endless stream on drain
            assert await asyncio.wait_for(server.process.wait(), GRACE + 2) == 0
            assert loop.time() - terminated_at < GRACE + 2
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()

    with sqlite3.connect(_data_dir / "demo.sqlite3") as db:
        rows = db.execute("SELECT COUNT(*) FROM audit WHERE kind = 'file_processed'").fetchone()[0]
    assert rows >= delivered  # a row for every delivered result
    assert "Traceback" not in "".join(server.log)
