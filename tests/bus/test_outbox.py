"""The embedded demo with a bus keeps each event in a SQLite outbox, committed with its state change:
an upload or a processed file is never half done (stored, its event lost) while NATS is away, and
every worker's relay sends each row once, in commit order."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import nats
import pytest

from clients.python.resume import watch_query
from cqrs.bus import BusConfig, JetStreamBroker, NatsServer, field_key
from demo.files.v1 import files_pb2, files_pb2_grpc
from examples.files import build_demo
from examples.files.domain import FileProcessed, FileUploaded
from examples.files.local_outbox import LocalOutbox, OutboxFileStore
from examples.files.reactions import notice_message
from examples.files.store import new_file_info
from tests.bus.helpers import until

pytestmark = pytest.mark.timeout(40)


async def test_an_upload_and_its_processing_while_nats_is_down_are_kept_and_reach_watchers_after(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    broker = JetStreamBroker(nats_server.url, key=field_key("file_id"), publish_timeout=1.0)
    running = await build_demo(tmp_path / "data", broker=broker).app.start("127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = files_pb2_grpc.FileServiceStub(channel)
            nats_server.stop()
            first = await stub.UploadFile(files_pb2.UploadFileCommand(name="a.txt", content=b"a\n"))
            processed = [
                r.status
                async for r in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=[first.file_id]))
            ]
            listed = await stub.ListFiles(files_pb2.ListFilesQuery())
            assert processed == ["completed"]
            assert [f.file_id for f in listed.files] == [first.file_id]  # one file: no retry needed

            nats_server.restart()
            watch = stub.WatchFileEvents(watch_query(0))
            second = await stub.UploadFile(files_pb2.UploadFileCommand(name="b.txt", content=b"b\n"))
            seen = []
            async for event in watch:
                seen.append((event.kind, event.file_id))
                if event.file_id == second.file_id:
                    break
            watch.cancel()
        assert seen == [
            ("file_uploaded", first.file_id),
            ("file_processed", first.file_id),
            ("file_uploaded", second.file_id),
        ]
    finally:
        await running.stop(grace=1)


async def test_two_workers_relays_send_every_row_once_in_commit_order_left_over_rows_included(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = BusConfig()
    broker = JetStreamBroker(nats_server.url, config=config, key=field_key("file_id"))
    await broker.start()
    stores = [OutboxFileStore(tmp_path / "data") for _ in range(2)]  # two workers on one database
    files = [new_file_info(f"{n}.txt", n, "0" * 64) for n in range(6)]

    def uploaded(n: int) -> FileUploaded:
        info = files[n]
        return FileUploaded(
            file_id=info.file_id,
            name=info.name,
            size=info.size,
            sha256=info.sha256,
            uploaded_at=info.uploaded_at,
        )

    left_over = [notice_message(uploaded(n)) for n in range(2)]
    for n, message in enumerate(left_over):  # committed by a worker that died before relaying them
        await stores[0].record_event(uploaded(n), message)
    outboxes = [LocalOutbox(store, broker, within=5.0, poll_interval=0.2) for store in stores]
    try:
        for outbox in outboxes:
            outbox.start()
        sent = list(left_over)
        for n in range(2, 6):  # alternating workers; each waits until its row is on the bus
            message = notice_message(uploaded(n))
            await outboxes[n % 2].record_event(uploaded(n), message)
            sent.append(message)
            processed = FileProcessed(
                file_id=files[n].file_id, status="completed", processed_at=files[n].uploaded_at
            )
            message = notice_message(processed)
            await outboxes[(n + 1) % 2].record_event(processed, message)
            sent.append(message)
        stored = await _stream_ids(nats_server.url, config, len(sent))
        assert stored == [str(m.message_id) for m in sent]
        await until(lambda: sum(o.relayed for o in outboxes) == len(sent), what="every row relayed")
        assert await stores[0].first_pending() is None
        assert [f.file_id for f in await stores[1].list_files()] == [f.file_id for f in files]
        statuses = [await stores[0].status(f.file_id) for f in files]
        assert [s.status for s in statuses if s] == ["uploaded"] * 2 + ["completed"] * 4
    finally:
        for outbox in outboxes:
            await outbox.stop()
        await broker.close()
        for store in stores:
            store.close()


async def _stream_ids(url: str, config: BusConfig, count: int) -> list[str]:
    """The event ids of the first ``count`` messages of the stream, then checks nothing follows."""
    nc = await nats.connect(url)
    try:
        sub = await nc.jetstream().subscribe(f"{config.prefix}.>", ordered_consumer=True)
        ids = []
        for _ in range(count):
            msg = await sub.next_msg(timeout=5)
            ids.append(str(json.loads(msg.data)["event_id"]))
        with pytest.raises(nats.errors.TimeoutError):
            await sub.next_msg(timeout=0.5)
        return ids
    finally:
        await nc.close()
