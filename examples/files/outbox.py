"""The outbox relay: moves committed events from PostgreSQL's ``outbox`` table to the NATS bus.

One relay runs at a time across all replicas: each replica's relay tries a session advisory lock, and
the one holding it publishes rows in ``id`` order, each awaited until JetStream stored it, then deletes
them. So the bus receives each file's events in the order they committed (see ``record_event``).

A crash after a publish and before the delete leaves the row in the outbox: the next relay (here or in
another replica, once the dead session's lock is released) publishes it again under the same
``Nats-Msg-Id`` (the event id), and JetStream drops the copy within its duplicate window. Nothing is
lost and nothing is duplicated. While NATS or the database is down the rows wait; the relay retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable

import psycopg

import cqrs
from cqrs.message_brokers.protocol import Message, MessageBroker
from examples.files.pgschema import OUTBOX_CHANNEL

__all__ = ["RELAY_LOCK", "OutboxRelay"]

logger = logging.getLogger("examples.files.outbox")

RELAY_LOCK = 0x6F7574626F78  # "outbox": the advisory lock the one active relay holds

AfterPublish = Callable[[Message], Awaitable[None]]


class OutboxRelay:
    """Relays ``outbox`` rows to ``broker`` while it holds the relay lock; ``start`` / ``stop`` it.

    ``poll_interval`` bounds how long a row waits when a NOTIFY was missed, and how often a replica
    that does not hold the lock tries to take it over.
    """

    def __init__(
        self,
        url: str,
        broker: MessageBroker,
        *,
        batch: int = 100,
        poll_interval: float = 0.5,
        after_publish: AfterPublish | None = None,
    ) -> None:
        self.url = url
        self.broker = broker
        self.batch = batch
        self.poll_interval = poll_interval
        self.after_publish = after_publish  # a test's fault injection: runs between publish and delete
        self.holds_lock = False
        self.relayed = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        delay = self.poll_interval
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=3
                ) as conn:
                    await conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    delay = self.poll_interval
                    await self._serve(conn)
            except (psycopg.Error, cqrs.UnavailableError) as exc:  # the database or the bus is away
                logger.warning("outbox relay: %s; retrying in %.1f s", exc, delay)
            except Exception:  # anything else is logged too, and retried: the rows stay in the outbox
                logger.exception("outbox relay failed; retrying in %.1f s", delay)
            finally:
                self.holds_lock = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _serve(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        while not self.holds_lock:
            row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (RELAY_LOCK,))).fetchone()
            self.holds_lock = bool(row and row[0])
            if not self.holds_lock:
                await asyncio.sleep(self.poll_interval)
        logger.info("outbox relay: this replica relays the outbox")
        while True:
            if await self.relay_once(conn) == self.batch:
                continue
            await self._wait(conn)

    async def _wait(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        """Until a NOTIFY of a commit that added rows, or ``poll_interval`` passes."""
        async for _ in conn.notifies(timeout=self.poll_interval, stop_after=1):
            pass

    async def relay_once(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> int:
        """Publish up to ``batch`` rows in id order, then delete the published ones; how many."""
        cursor = await conn.execute(
            "SELECT id, event_id, message_name, topic, payload FROM outbox ORDER BY id LIMIT %s",
            (self.batch,),
        )
        published: list[object] = []
        try:
            for row_id, event_id, name, topic, payload in await cursor.fetchall():
                message = Message(
                    message_name=str(name),
                    topic=None if topic is None else str(topic),
                    payload=payload,
                    message_id=uuid.UUID(str(event_id)),
                )
                await self.broker.send_message(message)
                if self.after_publish is not None:
                    await self.after_publish(message)
                published.append(row_id)
        finally:
            if published:
                await conn.execute("DELETE FROM outbox WHERE id = ANY(%s)", (published,))
                self.relayed += len(published)
        return len(published)
