"""The demo's WatchFileEvents on the bus, served in-process: one sequence (the stream's) across
servers, ``after_sequence`` replays then goes live with no gap or duplicate, and a drain names the
sequence to resume after, which the SDK's watch uses to bridge a server restart by itself."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import nats
import pytest

from clients.python import AsyncFileClient, FileClient, Resume
from clients.python.models import FileEvent as SdkEvent
from clients.python.resume import watch_query
from cqrs.bus import BusConfig, NatsServer
from demo.files.v1 import files_pb2, files_pb2_grpc
from examples.files import build_demo
from server.app import RunningServer
from tests.bus.helpers import until
from tests.server.helpers import error_info, rich_status

pytestmark = pytest.mark.timeout(40)


@contextlib.asynccontextmanager
async def _serving(url: str, data_dir: Path, address: str = "127.0.0.1:0") -> AsyncIterator[RunningServer]:
    demo = build_demo(data_dir, nats_url=url)
    running = await demo.app.start(address)
    try:
        yield running
    finally:
        await running.stop(grace=1)


def _stub(channel: grpc.aio.Channel) -> files_pb2_grpc.FileServiceStub:
    return files_pb2_grpc.FileServiceStub(channel)


async def _upload(address: str, name: str) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await _stub(channel).UploadFile(files_pb2.UploadFileCommand(name=name, content=b"x\n"))
        return str(reply.file_id)


async def _watch(stub: files_pb2_grpc.FileServiceStub, after: int | None) -> grpc.aio.UnaryStreamCall:
    call = stub.WatchFileEvents(watch_query(after))  # None: from now on
    headers = dict(await call.initial_metadata())
    assert headers["x-subscribed"] == "true"  # live from here on
    if after is not None:
        assert headers["x-resume-after-sequence"] == str(after)  # where a lost connection resumes
    return call


async def test_watchers_of_two_servers_share_one_sequence_and_after_sequence_replays_then_goes_live(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async with (
        _serving(nats_server.url, tmp_path / "a") as a,
        _serving(nats_server.url, tmp_path / "b") as b,
        grpc.aio.insecure_channel(a.address) as on_a,
        grpc.aio.insecure_channel(b.address) as on_b,
    ):
        first = await _upload(a.address, "1.txt")
        watch_a, watch_b = await _watch(_stub(on_a), None), await _watch(_stub(on_b), None)
        ids = [await _upload(a.address, "2.txt"), await _upload(b.address, "3.txt")]
        for call in (watch_a, watch_b):
            events = [await asyncio.wait_for(call.read(), 10) for _ in range(2)]
            assert [(e.sequence, e.file_id, e.kind) for e in events] == [
                (2, ids[0], "file_uploaded"),
                (3, ids[1], "file_uploaded"),
            ]
            call.cancel()
        # a watcher that saw #1 resumes after it: #2 and #3 replayed, then #4 live, nothing twice
        resumed = await _watch(_stub(on_b), 1)
        replayed = [await asyncio.wait_for(resumed.read(), 10) for _ in range(2)]
        ids.append(await _upload(a.address, "4.txt"))
        live = await asyncio.wait_for(resumed.read(), 10)
        assert [(e.sequence, e.file_id) for e in [*replayed, live]] == [(2, ids[0]), (3, ids[1]), (4, ids[2])]
        assert first not in {e.file_id for e in [*replayed, live]}
        assert replayed[0].name == "2.txt" and replayed[0].occurred_at.seconds > 0
        resumed.cancel()
        # a watch that ends deletes its consumer (well before JetStream's inactive_threshold would)
        assert await _consumers_left(nats_server.url) == 0


async def _consumers_left(url: str) -> int:
    """The stream's consumers, once none is left or after about 3 s."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for _ in range(60):
            count = int((await js.stream_info(BusConfig().stream)).state.consumer_count)
            if count == 0:
                break
            await asyncio.sleep(0.05)
        return count
    finally:
        await nc.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_drain_names_the_resume_sequence_and_the_sdk_watch_resumes_across_a_restart(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{_free_port()}"
    seen: list[SdkEvent] = []
    async with _serving(nats_server.url, tmp_path / "other") as other:
        first = await build_demo(tmp_path / "data", nats_url=nats_server.url).app.start(address)
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                raw = await _watch(_stub(channel), None)
                sdk = AsyncFileClient(address)
                watch = sdk.watch()
                await watch.__aenter__()

                async def read(count: int) -> None:
                    async for event in watch:
                        seen.append(event)
                        if len(seen) == count:
                            return

                reading = asyncio.create_task(read(5))
                await _upload(address, "1.txt")
                await _upload(address, "2.txt")
                got = [(await asyncio.wait_for(raw.read(), 10)).sequence for _ in range(2)]
                assert got == [1, 2]
                # the drain: the raw watch ends UNAVAILABLE naming #2, the SDK's reconnects by itself
                await first.stop(grace=5)
                with pytest.raises(grpc.aio.AioRpcError) as drained:
                    while True:
                        await asyncio.wait_for(raw.read(), 10)
        finally:
            await first.stop(grace=1)
        assert drained.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "after_sequence=2" in (drained.value.details() or "")
        assert error_info(rich_status(drained.value)).metadata["resume_after_sequence"] == "2"
        # while the server is away, events go on elsewhere
        await _upload(other.address, "3.txt")
        await _upload(other.address, "4.txt")
        async with _serving(nats_server.url, tmp_path / "data", address):
            await until(lambda: len(seen) >= 4, 20, "#3 and #4 replayed after the reconnect")
            await _upload(address, "5.txt")  # then live
            await asyncio.wait_for(reading, 20)
            await watch.__aexit__(None, None, None)
    await sdk.close()
    assert [e.sequence for e in seen] == [1, 2, 3, 4, 5]
    assert [e.name for e in seen] == ["1.txt", "2.txt", "3.txt", "4.txt", "5.txt"]


async def test_a_watch_opened_while_nats_is_down_is_unavailable_not_internal(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async with (
        _serving(nats_server.url, tmp_path / "a") as a,
        grpc.aio.insecure_channel(a.address) as channel,
    ):
        await _upload(a.address, "1.txt")
        first = _stub(channel).WatchFileEvents(files_pb2.WatchFileEventsQuery())
        await first.initial_metadata()  # the server's reader is connected
        first.cancel()
        nats_server.stop()
        try:
            await asyncio.sleep(0.5)
            call = _stub(channel).WatchFileEvents(files_pb2.WatchFileEventsQuery(after_sequence=1))
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                async for _ in call:
                    pass
        finally:
            nats_server.start()
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE  # so the SDK's watch retries
    assert error_info(rich_status(failed.value)).reason == "EVENT_BUS_UNAVAILABLE"
    assert failed.value.details() == "the event bus cannot be read now"  # no address, no exception name


async def test_a_watch_begun_on_an_empty_stream_resumes_from_the_first_event_after_a_drain(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """The drain names sequence 0; resuming "after 0" replays #1, published while the server was
    away (before, 0 meant "from now on" and #1 was lost)."""
    address = f"127.0.0.1:{_free_port()}"
    seen: list[int] = []
    async with _serving(nats_server.url, tmp_path / "other") as other:
        first = await build_demo(tmp_path / "data", nats_url=nats_server.url).app.start(address)
        sdk = AsyncFileClient(address)
        try:
            async with sdk.watch() as watch:

                async def read() -> None:
                    async for event in watch:
                        seen.append(event.sequence)
                        if len(seen) == 2:
                            return

                reading = asyncio.create_task(read())
                await first.stop(grace=5)  # before any event: resume after 0
                await _upload(other.address, "1.txt")
                async with _serving(nats_server.url, tmp_path / "data", address):
                    await _upload(other.address, "2.txt")
                    await asyncio.wait_for(reading, 20)
        finally:
            await first.stop(grace=1)
            await sdk.close()
    assert seen == [1, 2]


async def test_an_sdk_watch_opened_while_nats_is_down_enters_only_once_subscribed(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Both SDKs (the CLI uses the sync one): entering retries the UNAVAILABLE answers and returns
    once the server confirms the subscription, so "subscribed" is never said early."""
    resume = Resume(first_delay=0.05, max_delay=0.2, give_up_after=20)
    async with _serving(nats_server.url, tmp_path / "a") as a:
        nats_server.stop()
        sdk, sync_sdk = AsyncFileClient(a.address), FileClient(a.address)

        def sync_watch() -> bool:
            with sync_sdk.watch(after_sequence=0, resume=resume) as events:
                return events.subscribed

        async def bring_nats_back() -> None:
            async with grpc.aio.insecure_channel(a.address) as channel:  # until a watch was refused
                with contextlib.suppress(grpc.aio.AioRpcError):
                    async for _ in _stub(channel).WatchFileEvents(watch_query(0)):
                        pass
            nats_server.start()

        try:
            back = asyncio.create_task(bring_nats_back())
            sync_entered = asyncio.create_task(asyncio.to_thread(sync_watch))
            async with asyncio.timeout(25), sdk.watch(after_sequence=0, resume=resume) as watch:
                assert watch.subscribed and back.done()
                file_id = await _upload(a.address, "after.txt")
                event = await anext(aiter(watch))
                assert (event.sequence, event.file_id) == (1, file_id)
            assert await sync_entered
        finally:
            await sdk.close()
            sync_sdk.close()
            nats_server.start()
