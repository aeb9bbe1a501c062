"""Two replicas of one subscriber group against a real nats-server: each key's events are handled in
order across both, both get work, and an event whose ack is lost (or whose replica is kill -9'd before
the ack) is redelivered to the other replica and dropped there, not handled again."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter, defaultdict
from pathlib import Path

import nats.errors
import pytest
from nats.aio.msg import Msg

import cqrs
from cqrs.bus import BusConfig, NatsServer
from tests.bus._replica import logging_mediator, read_log
from tests.bus.helpers import FileChanged, Seen, broker, consumer, failing_fast, file_changed, message, until

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]


def _in_order(rows: Seen | list[tuple[str, str, int, str]]) -> dict[str, list[int]]:
    by_key: dict[str, list[int]] = defaultdict(list)
    for _, file_id, n, _ in rows:
        by_key[file_id].append(n)
    return by_key


async def test_one_keys_events_never_overlap_and_keep_their_order_across_two_replicas(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    seen: Seen = []
    running: Counter[str] = Counter()
    overlaps: list[tuple[str, int]] = []

    def tracking(who: str) -> cqrs.EventMediator:
        class Track(cqrs.EventHandler[FileChanged]):
            async def handle(self, event: FileChanged) -> None:
                assert event.payload is not None
                key, n = event.payload["file_id"], event.payload["n"]
                running[key] += 1
                if running[key] > 1:
                    overlaps.append((key, n))
                await asyncio.sleep(0.001 * (n % 4))  # uneven work: a later event could overtake
                seen.append((who, key, n, str(event.event_id)))
                running[key] -= 1

        event_map = cqrs.EventMap()
        event_map.bind(FileChanged, Track)
        return failing_fast(event_map)

    replicas = [consumer(nats_server.url, bus_config, tracking(who), "ordered") for who in ("a", "b")]
    events = [file_changed(f"f{i % 6}", i) for i in range(240)]
    async with broker(nats_server.url, bus_config) as publisher:
        for event in events:
            await publisher.send_message(message(event))
    for replica in replicas:
        await replica.start()
    try:
        await until(lambda: len(seen) >= 240, what="240 events handled")
        await asyncio.sleep(0.2)  # nothing more arrives
    finally:
        for replica in replicas:
            await replica.stop()
    assert sorted(eid for *_, eid in seen) == sorted(str(e.event_id) for e in events)  # once each
    assert overlaps == []
    assert all(ns == sorted(ns) for ns in _in_order(seen).values())
    per_replica = Counter(who for who, *_ in seen)
    assert per_replica["a"] > 0 and per_replica["b"] > 0, per_replica


async def test_a_lost_ack_redelivered_to_the_other_replica_is_dropped_there(
    nats_server: NatsServer, bus_config: BusConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = tmp_path / "handled.log"
    real_ack = Msg.ack_sync
    lost: list[Msg] = []

    async def lossy_ack(self: Msg, timeout: float = 1.0) -> object:
        if not lost:  # the first ack never reaches the server: JetStream redelivers after ack_wait
            lost.append(self)
            return None
        return await real_ack(self, timeout)

    monkeypatch.setattr(Msg, "ack_sync", lossy_ack)
    monkeypatch.setattr(Msg, "ack", lossy_ack)  # either way of acking loses the first ack
    event = file_changed("f1", 1)
    async with broker(nats_server.url, bus_config) as publisher:
        await publisher.send_message(message(event))
    first = consumer(nats_server.url, bus_config, logging_mediator(log, "first"), "g", ack_wait=0.5)
    async with first:
        await until(lambda: len(read_log(log)) == 1 and bool(lost), what="the first replica handled it")
    second = consumer(nats_server.url, bus_config, logging_mediator(log, "second"), "g", ack_wait=0.5)
    async with second:
        await until(lambda: second.stats.duplicates == 1, what="the redelivery reached the second replica")
    assert [who for who, *_ in read_log(log)] == ["first"] and second.stats.handled == 0
    with pytest.raises(ValueError, match="dedup_ttl"):  # the record must outlive a redelivery
        consumer(nats_server.url, bus_config, logging_mediator(log, "x"), "g", ack_wait=30, dedup_ttl=30)


async def test_a_replica_killed_before_its_ack_leaves_every_event_handled_once_and_in_order(
    nats_server: NatsServer, bus_config: BusConfig, tmp_path: Path
) -> None:
    log = tmp_path / "handled.log"
    hold_at = 9
    args = [nats_server.url, bus_config.stream, bus_config.prefix, "g", str(log), str(hold_at), "1.0"]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bus._replica", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        ready = await asyncio.wait_for(child.stdout.readline(), 15)
        assert ready.strip() == b"READY"
        events = [file_changed(f"f{i % 4}", i) for i in range(40)]
        async with broker(nats_server.url, bus_config) as publisher:
            for event in events:
                await publisher.send_message(message(event))
        holding = await asyncio.wait_for(child.stdout.readline(), 15)
        assert holding.strip() == b"HOLDING"  # event 9 is handled and recorded, its ack never sent
    finally:
        child.kill()  # SIGKILL
        await asyncio.wait_for(child.wait(), 5)
    survivor = consumer(nats_server.url, bus_config, logging_mediator(log, "survivor"), "g", ack_wait=1.0)
    async with survivor:
        await until(lambda: len({row[3] for row in read_log(log)}) == 40, what="all 40 events handled")
        await until(lambda: survivor.stats.duplicates >= 1, what="event 9's redelivery was dropped")
        await asyncio.sleep(0.2)  # nothing more arrives
    rows = read_log(log)
    assert sorted(eid for *_, eid in rows) == sorted(str(e.event_id) for e in events)  # once each
    assert all(ns == sorted(ns) for ns in _in_order(rows).values())
    assert [who for who, _, n, _ in rows if n == hold_at] == ["child"]
    assert {who for who, *_ in rows} == {"child", "survivor"}


async def test_an_unconfirmed_ack_is_sent_again_so_the_partition_is_not_held_for_ack_wait(
    nats_server: NatsServer, bus_config: BusConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A partition lets its next event out only after the ack: one lost (a NATS restart) must be sent
    again, not left for JetStream to redeliver after ack_wait (30 s here)."""
    log = tmp_path / "handled.log"
    real_ack = Msg.ack_sync
    lost: list[Msg] = []

    async def lossy_ack(self: Msg, timeout: float = 1.0) -> object:
        if not lost:  # the first ack never reaches the server, and no confirmation comes back
            lost.append(self)
            raise nats.errors.TimeoutError
        return await real_ack(self, timeout)

    monkeypatch.setattr(Msg, "ack_sync", lossy_ack)
    monkeypatch.setattr(Msg, "ack", lossy_ack)
    async with broker(nats_server.url, bus_config) as publisher:
        for n in (1, 2):
            await publisher.send_message(message(file_changed("f1", n)))
    runner = consumer(nats_server.url, bus_config, logging_mediator(log, "g"), "g", ack_wait=30.0)
    async with runner:
        await until(lambda: len(read_log(log)) == 2, what="the partition's second event came out")
    assert [n for _, _, n, _ in read_log(log)] == [1, 2] and runner.stats.duplicates == 0
