"""FileUploaded / FileProcessed between messages: audit rows, GetFileStatus, WatchFileEvents."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
import pytest

from clients.python import AsyncFileClient, Resume
from clients.python.models import FileServiceError
from demo.files.v1 import files_pb2
from examples.files.domain import FileEvent, FileUploaded
from examples.files.fanout import EventFanout, SubscriberFellBehind
from examples.files.reactions import append_audit, file_event
from tests.demo.conftest import Served, ServeDemo
from tests.server.helpers import error_info, rich_status


async def _subscribe(served: Served) -> grpc.aio.UnaryStreamCall:
    call = served.stub.WatchFileEvents(files_pb2.WatchFileEventsQuery())
    assert ("x-subscribed", "true") in tuple(await call.initial_metadata())  # live from here on
    return call


async def test_every_event_has_one_audit_row_written_before_the_next_message(served: Served) -> None:
    a = await served.upload("a.txt", b"a\n")
    call = served.stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=[a.file_id, "missing"]))
    await call.read()
    await call.read()  # message 2 is produced only after message 1's events were handled
    rows = await served.demo.store.audit_rows()
    assert [(r.kind, r.file_id, r.status) for r in rows[:2]] == [
        ("file_uploaded", a.file_id, "uploaded"),
        ("file_processed", a.file_id, "completed"),
    ]
    assert rows[0].detail == {"name": "a.txt", "size": 2, "sha256": a.sha256}
    assert await call.read() is grpc.aio.EOF
    rows = await served.demo.store.audit_rows()
    assert [(r.seq, r.kind, r.file_id, r.status) for r in rows] == [
        (1, "file_uploaded", a.file_id, "uploaded"),
        (2, "file_processed", a.file_id, "completed"),
        (3, "file_processed", "missing", "not_found"),
    ]


async def test_get_file_status_follows_the_events(served: Served) -> None:
    a = await served.upload("a.txt", b"a\n")
    status = await served.stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id=a.file_id))
    assert (status.status, status.HasField("processed_at")) == ("uploaded", False)
    [result] = await served.process(a.file_id)
    status = await served.stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id=a.file_id))
    assert (status.status, status.processed_at) == ("completed", result.processed_at)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await served.stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id="../demo.sqlite3"))
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


async def test_watchers_get_live_events_from_subscription_on(served: Served) -> None:
    before = await served.upload("before.txt", b"b")
    first, second = await _subscribe(served), await _subscribe(served)
    a = await served.upload("a.txt", b"a\nb\n")
    await served.process(a.file_id, "gone")
    for call in (first, second):
        events = [await call.read() for _ in range(3)]
        assert [(e.kind, e.file_id, e.status) for e in events] == [
            ("file_uploaded", a.file_id, ""),
            ("file_processed", a.file_id, "completed"),
            ("file_processed", "gone", "not_found"),
        ]
        assert events[0].name == "a.txt" and events[1].line_count == 2
        assert [e.sequence for e in events] == [2, 3, 4]  # #1 (before.txt) was not seen
        assert before.file_id not in {e.file_id for e in events}
        call.cancel()


async def test_without_a_bus_after_sequence_replays_the_audit_log_then_goes_live(served: Served) -> None:
    ids = [(await served.upload(f"{n}.txt", b"x")).file_id for n in range(3)]  # audit rows 1..3
    call = served.stub.WatchFileEvents(files_pb2.WatchFileEventsQuery(after_sequence=1))
    assert ("x-subscribed", "true") in tuple(await call.initial_metadata())
    replayed = [await asyncio.wait_for(call.read(), 5) for _ in range(2)]
    live_id = (await served.upload("3.txt", b"x")).file_id
    live = await asyncio.wait_for(call.read(), 5)
    assert [(e.sequence, e.file_id, e.kind) for e in [*replayed, live]] == [
        (2, ids[1], "file_uploaded"),
        (3, ids[2], "file_uploaded"),
        (4, live_id, "file_uploaded"),
    ]
    assert (replayed[0].name, replayed[0].size, replayed[0].status) == ("1.txt", 1, "")
    call.cancel()


async def test_a_subscriber_that_falls_behind_is_dropped_with_resource_exhausted(
    serve_demo: ServeDemo,
) -> None:
    async with serve_demo(subscriber_queue_size=4) as served:
        call = await _subscribe(served)
        now = datetime.now(UTC)
        # a burst with no await in between: the watcher cannot drain its queue, publish never waits
        for n in range(10):
            served.demo.fanout.publish(
                FileEvent(sequence=0, kind="file_uploaded", file_id=f"f{n}", occurred_at=now)
            )
        with pytest.raises(grpc.aio.AioRpcError) as dropped:
            async with asyncio.timeout(5):
                async for _ in call:
                    pass
        assert dropped.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dropped.value.details().startswith("subscriber fell behind")
        assert error_info(rich_status(dropped.value)).reason == "SUBSCRIBER_FELL_BEHIND"
        # the service goes on, and a new subscriber is served
        again = await _subscribe(served)
        await served.upload("next.txt", b"n")
        assert (await again.read()).name == "next.txt"
        again.cancel()


async def test_the_sdk_watch_dropped_for_falling_behind_resumes_with_no_gap(serve_demo: ServeDemo) -> None:
    """The server drops the watch (RESOURCE_EXHAUSTED SUBSCRIBER_FELL_BEHIND); the SDK reopens it after
    the last event it saw and the audit log replays the rest."""
    async with serve_demo(subscriber_queue_size=4) as served:
        sdk = AsyncFileClient(served.served.address)
        try:
            async with sdk.watch(resume=Resume(first_delay=0.01, give_up_after=5)) as watch:
                uploads = [
                    FileUploaded(
                        file_id=f"f{n}", name=f"{n}.txt", size=1, sha256="ab", uploaded_at=datetime.now(UTC)
                    )
                    for n in range(10)
                ]
                sequences = [await append_audit(served.demo.store, event) for event in uploads]
                (watching,) = served.demo.fanout._subscribers
                for event, sequence in zip(uploads, sequences, strict=True):  # a burst: the watch is dropped
                    served.demo.fanout.publish(file_event(event, sequence))
                assert watching.dropped
                seen = []
                async with asyncio.timeout(10):
                    async for event in watch:
                        seen.append((event.sequence, event.file_id))
                        if len(seen) == len(uploads):
                            break
        finally:
            await sdk.close()
        assert seen == [(s, f"f{n}") for n, s in enumerate(sequences)]


async def test_watchers_end_with_unavailable_when_the_server_drains(serve_demo: ServeDemo) -> None:
    async with serve_demo() as served:
        calls = [await _subscribe(served) for _ in range(3)]
        loop = asyncio.get_running_loop()
        began = loop.time()
        stopping = asyncio.create_task(served.served.running.stop(grace=10))
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await asyncio.wait_for(call.read(), 5)
            assert ended.value.code() is grpc.StatusCode.UNAVAILABLE
            assert ended.value.details() == "server is shutting down; reconnect with after_sequence=0"
        await stopping
        assert loop.time() - began < 3  # not the 10 s grace: the streams ended on the drain signal


def test_fanout_drops_only_the_full_subscriber_and_never_blocks() -> None:
    async def scenario() -> None:
        fanout = EventFanout(queue_size=2)
        now = datetime.now(UTC)
        with fanout.subscribe() as slow, fanout.subscribe() as fast:
            for n in range(3):
                numbered = fanout.publish(FileEvent(sequence=0, kind="k", file_id=str(n), occurred_at=now))
                assert numbered.sequence == n + 1
                if n < 2:
                    assert (await fast.next()).file_id == str(n)
            assert slow.dropped and slow.pending == 0 and not fast.dropped
            assert (await fast.next()).file_id == "2"
            with pytest.raises(SubscriberFellBehind):
                await slow.next()
        assert fanout.subscriber_count == 0

    asyncio.run(scenario())


def test_a_fanout_subscription_stops_once_its_stop_is_done_waiting_or_not() -> None:
    async def scenario() -> None:
        fanout = EventFanout()
        now = datetime.now(UTC)
        with fanout.subscribe() as subscription:
            stop = asyncio.get_running_loop().create_future()
            waiting = asyncio.ensure_future(subscription.next(stop))
            await asyncio.sleep(0.01)
            assert not waiting.done()  # nothing published: it waits
            stop.set_result(None)
            assert await asyncio.wait_for(waiting, 5) is None
            # events that keep coming after the stop (other streams still publishing) do not hold it
            fanout.publish(FileEvent(sequence=0, kind="k", file_id="late", occurred_at=now))
            assert subscription.pending == 1
            assert await subscription.next(stop) is None
            assert (await subscription.next()).file_id == "late"  # without a stop it is still there

    asyncio.run(scenario())


async def test_an_after_sequence_past_the_last_event_is_out_of_range_not_a_silent_skip(
    served: Served,
) -> None:
    await served.upload("a.txt", b"a")  # audit row 1: the last event
    at_the_end = served.stub.WatchFileEvents(files_pb2.WatchFileEventsQuery(after_sequence=1))
    assert ("x-subscribed", "true") in tuple(await at_the_end.initial_metadata())
    at_the_end.cancel()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in served.stub.WatchFileEvents(files_pb2.WatchFileEventsQuery(after_sequence=2)):
            pass
    assert refused.value.code() is grpc.StatusCode.OUT_OF_RANGE
    assert refused.value.details() == "sequence 2 is past the last event (1); start after 1 or less"
    info = error_info(rich_status(refused.value))
    assert (info.reason, dict(info.metadata)) == ("SEQUENCE_OUT_OF_RANGE", {"last_sequence": "1"})
    sdk = AsyncFileClient(served.served.address)
    try:  # the SDK does not retry it: waiting would not help, resuming from elsewhere is the caller's call
        with pytest.raises(FileServiceError) as surfaced:
            async with asyncio.timeout(5), sdk.watch(after_sequence=5) as watch:
                async for _ in watch:
                    pass
        assert surfaced.value.code is grpc.StatusCode.OUT_OF_RANGE
    finally:
        await sdk.close()
