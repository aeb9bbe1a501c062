"""A replica of a subscriber group in a process of its own, for the test that kill -9s it.

``python -m tests.bus._replica URL STREAM PREFIX GROUP LOG HOLD_AT ACK_WAIT`` appends one line per handled
event to LOG (shared with the other replica), prints ``READY`` once consuming, and when it is about to ack
event ``n == HOLD_AT`` never acks it, and prints ``HOLDING`` once every earlier event was acked; it
handles no later event. A kill -9 then finds it between an event's effect (and record) and its ack.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from nats.aio.msg import Msg

import cqrs
from cqrs.bus import BusConfig, BusConsumer
from tests.bus.helpers import FileChanged, failing_fast


def logging_mediator(log: Path, who: str, block_above: int | None = None) -> cqrs.EventMediator:
    """An EventMediator whose handler appends ``who file_id n event_id`` to ``log`` (one write per line,
    O_APPEND: lines of two processes never mix); events with ``n > block_above`` wait forever instead."""

    class Append(cqrs.EventHandler[FileChanged]):
        async def handle(self, event: FileChanged) -> None:
            assert event.payload is not None
            if block_above is not None and event.payload["n"] > block_above:
                await asyncio.Event().wait()
            line = f"{who} {event.payload['file_id']} {event.payload['n']} {event.event_id}\n"
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    event_map = cqrs.EventMap()
    event_map.bind(FileChanged, Append)
    return failing_fast(event_map)


def read_log(log: Path) -> list[tuple[str, str, int, str]]:
    """The log's lines as ``(who, file_id, n, event_id)``, in the order they were written."""
    if not log.exists():
        return []
    rows = [line.split() for line in log.read_text().splitlines() if line]
    return [(who, file_id, int(n), event_id) for who, file_id, n, event_id in rows]


async def main(url: str, stream: str, prefix: str, group: str, log: str, hold_at: str, ack_wait: str) -> None:
    held = int(hold_at)
    acked: set[int] = set()
    holding = False
    real_ack = Msg.ack_sync

    def tell() -> None:
        if holding and len(acked) == held:  # 0 .. held-1 acked: nothing else is half done
            print("HOLDING", flush=True)

    async def ack(self: Msg, timeout: float = 1.0) -> object:
        nonlocal holding
        n = json.loads(self.data)["payload"]["n"]
        if n == held:
            holding = True
            tell()
            await asyncio.Event().wait()  # the ack never leaves: kill -9 comes first
        reply = await real_ack(self, timeout)
        acked.add(n)
        tell()
        return reply

    Msg.ack_sync = Msg.ack = ack  # type: ignore[method-assign,assignment]
    config = BusConfig(stream=stream, prefix=prefix)
    consumer = BusConsumer(
        logging_mediator(Path(log), "child", held),
        group=group,
        url=url,
        config=config,
        ack_wait=float(ack_wait),
    )
    await consumer.start()
    print("READY", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:8]))
