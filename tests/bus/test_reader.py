"""BusReader against a real nats-server: replay from a sequence then live with no gap or duplicate,
several topics, resuming across a NATS restart, a reader that does not read never blocks publishing,
and leaving a follow deletes its consumer and leaves no task."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import cqrs
from cqrs.bus import BusConfig, BusReader, Follow, NatsServer
from tests.bus.helpers import FileChanged, broker, close_for_good, file_changed, message, until

pytestmark = pytest.mark.timeout(30)


class OtherThing(cqrs.NotificationEvent[dict[str, Any]]):
    """An event under another name: a reader of ``file_changed`` does not see it."""


async def _publish(url: str, config: BusConfig, events: list[cqrs.NotificationEvent[Any]]) -> None:
    async with broker(url, config) as publisher:
        for event in events:
            await publisher.send_message(message(event))  # type: ignore[arg-type]


async def _take(events: Follow, count: int, within: float = 10.0) -> list[tuple[int, int]]:
    """``(sequence, n)`` of the next ``count`` events, within ``within`` seconds."""
    taken: list[tuple[int, int]] = []
    iterator = aiter(events)
    async with asyncio.timeout(within):
        while len(taken) < count:
            sequence, event = await anext(iterator)
            assert isinstance(event, FileChanged) and event.payload is not None
            taken.append((sequence, event.payload["n"]))
    return taken


@pytest.fixture
async def reader(nats_server: NatsServer, bus_config: BusConfig) -> AsyncIterator[BusReader]:
    bus = BusReader(nats_server.url, event_types=[FileChanged], config=bus_config, fetch_wait=0.2)
    try:
        yield bus
    finally:
        await bus.close()


async def test_a_follow_replays_after_its_sequence_then_goes_live_without_gap_or_duplicate(
    nats_server: NatsServer, bus_config: BusConfig, reader: BusReader
) -> None:
    # sequences 1..6: file_changed n=1..4 with another event name at 2 and 5
    events: list[cqrs.NotificationEvent[Any]] = [file_changed("a", 1)]
    events += [OtherThing(event_name="other_thing", payload={"file_id": "a"}), file_changed("b", 2)]
    events += [file_changed("a", 3), OtherThing(event_name="other_thing", payload={}), file_changed("c", 4)]
    await _publish(nats_server.url, bus_config, events)
    async with reader.follow(["file_changed"], after=3) as follow:
        assert await _take(follow, 2) == [(4, 3), (6, 4)]
        await _publish(nats_server.url, bus_config, [file_changed("a", 5), file_changed("b", 6)])
        assert await _take(follow, 2) == [(7, 5), (8, 6)]
        assert follow.last_sequence == 8
    async with reader.follow(["file_changed", "other_thing"], after=0) as both:
        seen = [sequence for sequence, _ in [await anext(aiter(both)) for _ in range(5)]]
    # OtherThing is not among the reader's types: skipped, yet its sequence is passed
    assert seen == [1, 3, 4, 6, 7]


async def test_a_follow_from_now_sees_only_what_is_published_after_it_opened(
    nats_server: NatsServer, bus_config: BusConfig, reader: BusReader
) -> None:
    await _publish(nats_server.url, bus_config, [file_changed("a", 1), file_changed("a", 2)])
    async with reader.follow(["file_changed"]) as follow:
        assert follow.last_sequence == 2
        await _publish(nats_server.url, bus_config, [file_changed("a", 3)])
        assert await _take(follow, 1) == [(3, 3)]


async def test_until_ends_a_follow_once_stop_is_done_even_while_it_waits_for_an_event(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    # a pull request lasting 30 s: only the stop can end the wait within the 5 s below
    bus = BusReader(nats_server.url, event_types=[FileChanged], config=bus_config, fetch_wait=30)
    await _publish(nats_server.url, bus_config, [file_changed("a", 1)])
    try:
        async with bus.follow(["file_changed"], after=0) as follow:
            stop = asyncio.get_running_loop().create_future()
            events = follow.until(stop)
            assert (await anext(events))[0] == 1
            waiting = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0.2)
            assert not waiting.done()  # nothing more was published: it waits
            stop.set_result(None)
            async with asyncio.timeout(5):
                with pytest.raises(StopAsyncIteration):
                    await waiting
            assert follow.last_sequence == 1
    finally:
        await bus.close()


async def test_a_follow_resumes_after_a_nats_restart_or_a_lost_consumer_without_gap_or_duplicate(
    nats_server: NatsServer, bus_config: BusConfig, reader: BusReader
) -> None:
    await _publish(nats_server.url, bus_config, [file_changed("a", n) for n in range(1, 4)])
    async with reader.follow(["file_changed"], after=0) as follow:
        assert await _take(follow, 2) == [(1, 1), (2, 2)]
        nats_server.restart()
        await _publish(nats_server.url, bus_config, [file_changed("a", n) for n in range(4, 7)])
        assert await _take(follow, 4) == [(3, 3), (4, 4), (5, 5), (6, 6)]
        # a consumer gone while the connection stays up (JetStream drops one idle past its
        # inactive_threshold): an idle fetch finds out and makes it again
        waiting = asyncio.create_task(_take(follow, 1))
        js = await reader.start()
        [consumer] = await js.consumers_info(bus_config.stream)
        await js.delete_consumer(bus_config.stream, consumer.name)
        await _publish(nats_server.url, bus_config, [file_changed("a", 7)])
        assert await waiting == [(7, 7)]


async def test_a_reader_that_does_not_read_never_blocks_publishing(
    nats_server: NatsServer, bus_config: BusConfig, reader: BusReader
) -> None:
    count = 600  # more than two fetches' worth
    async with reader.follow(["file_changed"], after=0) as follow:
        assert await _take(follow, 0) == []
        async with asyncio.timeout(20):
            await _publish(nats_server.url, bus_config, [file_changed("a", n) for n in range(1, count + 1)])
        taken = await _take(follow, count)
    assert taken == [(n, n) for n in range(1, count + 1)]


async def test_leaving_a_follow_deletes_its_consumer_and_leaves_no_task(
    nats_server: NatsServer, bus_config: BusConfig, reader: BusReader
) -> None:
    await _publish(nats_server.url, bus_config, [file_changed("a", 1), file_changed("a", 2)])
    js = await reader.start()  # the connection's own tasks are not the follow's
    before = asyncio.all_tasks()
    async with reader.follow(["file_changed"], after=0) as follow:
        async for _sequence, _event in follow:
            break  # the reader stops after one event
    js = await reader.start()
    info = await js.stream_info(bus_config.stream)
    assert info.state.consumer_count == 0
    assert asyncio.all_tasks() <= before


class _Proxy:
    """A TCP relay to NATS: ``flowing.clear()`` holds the server's bytes back (``held``: what it holds),
    ``cut`` drops them and both sockets."""

    def __init__(self, port: int) -> None:
        self.port, self.flowing = port, asyncio.Event()
        self.flowing.set()
        self.pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.held = bytearray()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"nats://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.port)
        self.pairs.append((client_w, up_w))

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, down: bool) -> None:
            try:
                while data := await r.read(65536):
                    if down and not self.flowing.is_set():
                        self.held += data
                        await self.flowing.wait()
                    if w.is_closing():
                        return
                    w.write(data)
                    await w.drain()
            except OSError:
                pass
            finally:
                w.close()

        await asyncio.gather(pump(client_r, up_w, False), pump(up_r, client_w, True))

    def cut(self) -> None:
        for client_w, up_w in self.pairs:
            client_w.transport.abort()
            up_w.transport.abort()
        self.pairs.clear()
        self.flowing.set()


async def test_events_lost_in_flight_with_a_dropped_connection_are_fetched_again(
    nats_server: NatsServer, bus_config: BusConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cqrs.bus")
    proxy = _Proxy(int(nats_server.url.rsplit(":", 1)[1]))
    reader = BusReader(await proxy.start(), event_types=[FileChanged], config=bus_config, fetch_wait=1.0)
    try:
        await _publish(nats_server.url, bus_config, [file_changed("a", 1)])
        async with reader.follow(["file_changed"], after=0) as follow:
            events = aiter(follow)
            assert (await anext(events))[0] == 1
            waiting = asyncio.ensure_future(anext(events))
            proxy.flowing.clear()
            await _publish(nats_server.url, bus_config, [file_changed("a", 2), file_changed("a", 3)])
            await until(lambda: b"HMSG" in proxy.held, what="#2 held in flight")
            proxy.cut()  # #2 (and #3, if sent) went to a connection that is gone
            for _ in range(100):
                await asyncio.sleep(0.05)
                if reader._nc is not None and reader._nc.is_connected:
                    break
            # the pull request is still open on the server: #4 reaches the new connection
            await _publish(nats_server.url, bus_config, [file_changed("a", 4)])
            got = [(await asyncio.wait_for(waiting, 15))[0]]
            got.append((await asyncio.wait_for(anext(events), 5))[0])
            got.append((await asyncio.wait_for(anext(events), 5))[0])
            assert got == [2, 3, 4]
            assert "came after" in caplog.text  # the hole was seen, not a lucky late delivery
    finally:
        await reader.close()
        proxy.server.close()


def _reader_of_a_stopped_server(
    nats_server: NatsServer, config: BusConfig, connect_timeout: float
) -> BusReader:
    nats_server.stop()
    return BusReader(
        nats_server.url, event_types=[FileChanged], config=config, connect_timeout=connect_timeout
    )


async def _open_a_follow(reader: BusReader) -> None:
    async with reader.follow(["file_changed"]):
        pass


async def test_follows_queued_behind_one_connection_attempt_each_fail_within_their_own_bound(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    reader = _reader_of_a_stopped_server(nats_server, bus_config, connect_timeout=0.3)

    started = asyncio.get_running_loop().time()
    try:
        failed = await asyncio.gather(*(_open_a_follow(reader) for _ in range(10)), return_exceptions=True)
    finally:
        await reader.close()
    elapsed = asyncio.get_running_loop().time() - started
    assert all(isinstance(f, cqrs.UnavailableError) for f in failed)
    assert elapsed < 1.5  # not 10 x 0.3 s, one attempt after another


async def test_a_follow_goes_on_after_nats_py_closed_the_connection_for_good(
    nats_server: NatsServer, bus_config: BusConfig, reader: BusReader
) -> None:
    await _publish(nats_server.url, bus_config, [file_changed("a", 1)])
    async with reader.follow(["file_changed"], after=0) as follow:
        assert await _take(follow, 1) == [(1, 1)]
        await close_for_good(reader._nc)
        await _publish(nats_server.url, bus_config, [file_changed("a", 2)])
        assert await _take(follow, 1) == [(2, 2)]


async def test_a_follow_waits_out_an_outage_that_began_with_its_connection_closed_for_good(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    reader = BusReader(
        nats_server.url, event_types=[FileChanged], config=bus_config, fetch_wait=0.2, connect_timeout=0.3
    )
    await _publish(nats_server.url, bus_config, [file_changed("a", 1)])
    try:
        async with reader.follow(["file_changed"], after=0) as follow:
            assert await _take(follow, 1) == [(1, 1)]
            await close_for_good(reader._nc)
            nats_server.stop()  # each new connection fails for longer than connect_timeout
            waiting = asyncio.create_task(_take(follow, 1, within=25))
            await asyncio.sleep(3.5)  # past fetch_wait + the grace before the loss is noticed, and a connect
            assert not waiting.done()
            nats_server.start()
            await _publish(nats_server.url, bus_config, [file_changed("a", 2)])
            assert await waiting == [(2, 2)]
    finally:
        await reader.close()


async def test_a_reader_closed_while_it_connects_gives_the_connection_up(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    reader = _reader_of_a_stopped_server(nats_server, bus_config, connect_timeout=10.0)

    opening = asyncio.create_task(_open_a_follow(reader))
    await asyncio.sleep(0.3)  # the follow's start is connecting, retrying
    await reader.close()
    nats_server.start()
    with pytest.raises(cqrs.UnavailableError):
        await asyncio.wait_for(opening, 15)
    assert reader._nc is None  # no connection left open for a closed reader


async def test_a_follow_after_the_last_sequence_is_out_of_range_and_at_it_is_live(
    nats_server: NatsServer, bus_config: BusConfig, reader: BusReader
) -> None:
    await _publish(nats_server.url, bus_config, [file_changed("a", 1), file_changed("a", 2)])
    with pytest.raises(cqrs.OutOfRangeError) as refused:
        async with reader.follow(["file_changed"], after=3):
            pass
    assert refused.value.metadata == {"last_sequence": "2"}
    async with reader.follow(["file_changed"], after=2) as follow:
        await _publish(nats_server.url, bus_config, [file_changed("a", 3)])
        assert await _take(follow, 1) == [(3, 3)]


async def test_a_follow_whose_stream_is_made_anew_ends_out_of_range_and_a_new_one_reads_it(
    nats_server: NatsServer, bus_config: BusConfig, reader: BusReader, tmp_path: Path
) -> None:
    await _publish(nats_server.url, bus_config, [file_changed("a", 1), file_changed("a", 2)])
    fresh = NatsServer(tmp_path / "fresh-store", port=nats_server.port)  # same port, nothing stored
    try:
        async with reader.follow(["file_changed"], after=0) as follow:
            assert await _take(follow, 2) == [(1, 1), (2, 2)]
            nats_server.stop()
            fresh.start()
            await _publish(nats_server.url, bus_config, [file_changed("b", n) for n in range(3, 6)])
            with pytest.raises(cqrs.OutOfRangeError) as reset:
                await _take(follow, 1)
        assert reset.value.message.startswith("the event stream was reset after sequence 2")
        async with reader.follow(["file_changed"], after=0) as again:
            assert await _take(again, 3) == [(1, 3), (2, 4), (3, 5)]
    finally:
        fresh.stop()
