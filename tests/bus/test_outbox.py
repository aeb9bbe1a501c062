"""The embedded demo with a bus keeps each event in a SQLite outbox, committed with its state change:
an upload or a processed file is never half done (stored, its event lost) while NATS is away, and
every worker's relay sends each row once, in commit order."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import nats
import pytest

import cqrs
from clients.python.resume import watch_query
from cqrs.bus import BusConfig, JetStreamBroker, NatsServer, field_key
from cqrs.message_brokers.protocol import Message, MessageBroker
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


def _uploaded(n: int) -> FileUploaded:
    info = new_file_info(f"{n}.txt", n, "0" * 64)
    return FileUploaded(
        file_id=info.file_id, name=info.name, size=info.size, sha256=info.sha256, uploaded_at=info.uploaded_at
    )


async def test_two_workers_relays_send_every_row_once_in_commit_order_left_over_rows_included(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = BusConfig()
    broker = JetStreamBroker(nats_server.url, config=config, key=field_key("file_id"))
    await broker.start()
    stores = [OutboxFileStore(tmp_path / "data") for _ in range(2)]  # two workers on one database
    uploads = [_uploaded(n) for n in range(40)]
    committed: list[tuple[int, Message]] = []  # (outbox row, message): the commit order
    for event in uploads[:4]:  # committed by a worker that died before relaying them
        message = notice_message(event)
        committed.append((await stores[0].record_event(event, message), message))
    outboxes = [LocalOutbox(store, broker, within=5.0, poll_interval=0.2) for store in stores]
    try:
        for outbox in outboxes:
            outbox.start()

        async def record(n: int) -> None:  # uploads and their processing, in both workers at once
            for event in (uploads[n], _processed(uploads[n])):
                message = notice_message(event)
                committed.append((await outboxes[n % 2].record_event(event, message), message))

        await asyncio.gather(*(record(n) for n in range(4, len(uploads))))
        committed.sort(key=lambda pair: pair[0])
        stored = await _stream_ids(nats_server.url, config, len(committed))
        assert stored == [str(message.message_id) for _, message in committed]
        await until(lambda: sum(o.relayed for o in outboxes) == len(committed), what="every row relayed")
        assert sum(o.relayed for o in outboxes) == len(committed)  # once each: never two relays at once
        assert await stores[0].first_pending() is None
        assert len(await stores[1].list_files()) == len(uploads)
    finally:
        for outbox in outboxes:
            await outbox.stop()
        await broker.close()
        for store in stores:
            store.close()


def _processed(event: FileUploaded) -> FileProcessed:
    return FileProcessed(file_id=event.file_id, status="completed", processed_at=event.uploaded_at)


class FakeBroker(MessageBroker):
    """Keeps what it is sent; raises UnavailableError while ``down``; the send of message number
    ``hold_at`` (from 0) waits for ``gate``."""

    def __init__(self, hold_at: int | None = None) -> None:
        self.sent: list[Message] = []
        self.down = False
        self.hold_at = hold_at
        self.gate = asyncio.Event()

    async def send_message(self, message: Message) -> None:
        if self.down:
            raise cqrs.UnavailableError("the event bus did not store the event in time")
        if len(self.sent) == self.hold_at:
            await self.gate.wait()
        self.sent.append(message)


async def test_each_row_is_deleted_as_soon_as_it_is_stored_not_with_its_batch(tmp_path: Path) -> None:
    store = OutboxFileStore(tmp_path / "data")
    rows = [await store.record_event(event, notice_message(event)) for event in map(_uploaded, range(5))]
    broker = FakeBroker(hold_at=2)
    outbox = LocalOutbox(store, broker, poll_interval=0.05)
    outbox.start()
    try:
        await until(lambda: len(broker.sent) == 2, what="two rows sent, the third held")
        await until(lambda: outbox.relayed == 2, what="the two deleted while the third is held")
        assert [row for row, _ in await store.pending(10)] == rows[2:]  # a crash now resends none of them
        broker.gate.set()
        await until(lambda: len(broker.sent) == 5, what="the rest sent")
        await until(lambda: outbox.relayed == 5, what="the rest deleted")
        assert await store.first_pending() is None
    finally:
        await outbox.stop()
        store.close()


async def test_while_the_bus_is_down_rpcs_do_not_wait_and_their_rows_go_out_once_it_is_back(
    tmp_path: Path,
) -> None:
    store = OutboxFileStore(tmp_path / "data")
    broker = FakeBroker()
    broker.down = True
    outbox = LocalOutbox(store, broker, within=60.0, poll_interval=0.05)  # a wait would hit the timeout
    outbox.start()
    try:
        events = [_uploaded(n) for n in range(3)]
        async with asyncio.timeout(10):
            for event in events:
                await outbox.record_event(event, notice_message(event))
        assert outbox.bus_down and broker.sent == []
        broker.down = False
        await until(lambda: len(broker.sent) == 3, what="the rows sent once the bus is back")
        assert [m.payload["payload"]["file_id"] for m in broker.sent] == [e.file_id for e in events]
        await until(lambda: not outbox.bus_down, what="RPCs wait again")
    finally:
        await outbox.stop()
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
