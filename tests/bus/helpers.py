"""Events, handlers and waits shared by the bus tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client

import cqrs
from cqrs.bus import BusConfig, BusConsumer, JetStreamBroker, field_key
from cqrs.message_brokers import Message


class FileChanged(cqrs.NotificationEvent[dict[str, Any]]):
    """The test event: ``payload = {"file_id": ..., "n": ...}``; its key is the file id."""


def file_changed(file_id: str, n: int) -> FileChanged:
    return FileChanged(event_name="file_changed", payload={"file_id": file_id, "n": n})


def message(event: FileChanged) -> Message:
    """The message the mediator's EventEmitter makes of ``event``."""
    from cqrs.message_brokers.protocol import message_of

    return message_of(event)


Seen = list[tuple[str, str, int, str]]  # (who, file id, n, event id)


def recording_mediator(
    seen: Seen, who: str, *, gate: asyncio.Event | None = None, pause: float = 0.0
) -> cqrs.EventMediator:
    """An EventMediator whose one handler appends ``(who, file_id, n, event_id)`` to ``seen``; it
    first waits for ``gate`` (if given) and sleeps ``pause``."""

    class Record(cqrs.EventHandler[FileChanged]):
        async def handle(self, event: FileChanged) -> None:
            if gate is not None:
                await gate.wait()
            if pause:
                await asyncio.sleep(pause)
            assert event.payload is not None
            seen.append((who, event.payload["file_id"], event.payload["n"], str(event.event_id)))

    event_map = cqrs.EventMap()
    event_map.bind(FileChanged, Record)
    return failing_fast(event_map)


def failing_fast(event_map: cqrs.EventMap) -> cqrs.EventMediator:
    """An EventMediator that raises when a handler fails, as a BusConsumer needs."""
    return cqrs.EventMediator(event_map, settings=cqrs.MediatorSettings(event_failure_policy="fail"))


def broker(url: str, config: BusConfig, **options: Any) -> JetStreamBroker:
    return JetStreamBroker(url, config=config, key=field_key("file_id"), **options)


def consumer(
    url: str, config: BusConfig, mediator: cqrs.EventMediator, group: str, **options: Any
) -> BusConsumer:
    options.setdefault("connect_timeout", 5.0)
    options.setdefault("drain_timeout", 2.0)
    options.setdefault("fetch_wait", 0.1)  # a quick stop()
    return BusConsumer(mediator, group=group, url=url, config=config, **options)


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait until ``condition()`` holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.02)


async def close_for_good(nc: Client | None) -> None:
    """Make nats-server end ``nc`` with a protocol error (a subject beyond its control line limit):
    nats-py then closes the connection for good instead of reconnecting."""
    assert nc is not None and nc.is_connected
    await nc.publish("x." + "y" * 5000, b"")
    await until(lambda: nc.is_closed, what="nats-py closed the connection")
