"""The embedded demo's outbox (SQLite, with a bus): each event commits with its state change, and a
relay in every worker moves it to NATS.

A relay publishes every pending row in id order (SQLite's one writer makes id order the commit order,
so each file's events keep theirs) while it holds an exclusive ``flock`` on ``outbox.lock`` in the data
dir: one worker at a time, and the lock of a killed worker is released by the OS. Rows are deleted as
soon as JetStream stored them (while the next ones are sent); a crash in between publishes those few
again under the same ``Nats-Msg-Id`` (the event id), and JetStream drops the copies within its duplicate
window (120 s). Rows a dead worker left are published by any worker's next round (one runs every
``poll_interval``).

An RPC waits, at most ``within`` seconds, until its event is on the bus, so a client holding the reply
knows its events are in JetStream. If the bus stays away longer the reply goes out anyway: the event is
committed, and published once the bus is back. While the relay's last attempt failed, RPCs do not wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import uuid

import cqrs
from cqrs.message_brokers.protocol import Message, MessageBroker
from examples.files.domain import NOT_FOUND, FileInfo, FileProcessed, FileUploaded
from examples.files.store import FileStore, audit_fields, new_file_info, plain

__all__ = ["LocalOutbox", "OutboxFileStore"]

logger = logging.getLogger("examples.files.outbox")

LOCK_FILE = "outbox.lock"


class OutboxFileStore(FileStore):
    """A :class:`FileStore` whose state changes commit with their audit and outbox rows
    (``record_event``): an upload's file row is written by its FileUploaded event."""

    EXTRA_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    message_name TEXT NOT NULL,
    topic TEXT,
    payload TEXT NOT NULL
);
"""

    async def _record(self, name: str, size: int, sha256: str) -> FileInfo:
        return new_file_info(name, size, sha256)

    async def record_event(self, event: FileUploaded | FileProcessed, message: Message) -> int:
        """Commit the event's state change, audit row and outbox row (``message``) together; the
        outbox row's id."""
        kind, status, occurred_at, detail = audit_fields(event)

        def commit() -> int:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if isinstance(event, FileUploaded):
                    info = FileInfo(
                        file_id=event.file_id,
                        name=event.name,
                        size=event.size,
                        sha256=event.sha256,
                        uploaded_at=event.uploaded_at,
                    )
                    self._insert_file(info)
                elif event.status != NOT_FOUND:
                    db.execute(
                        "UPDATE files SET status = ?, processed_at = ? WHERE file_id = ?",
                        (event.status, event.processed_at.isoformat(), event.file_id),
                    )
                self._insert_audit(kind, event.file_id, status, occurred_at, detail)
                row = db.execute(
                    "INSERT INTO outbox (event_id, message_name, topic, payload) VALUES (?, ?, ?, ?)",
                    (
                        str(message.message_id),
                        message.message_name,
                        message.topic,
                        json.dumps(plain(message.payload)),
                    ),
                ).lastrowid
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return int(row or 0)

        return await self._sql(commit)

    async def pending(self, limit: int) -> list[tuple[int, Message]]:
        """The oldest ``limit`` rows not yet on the bus, in id order."""
        rows = await self._sql(
            lambda: self._db.execute(
                "SELECT id, event_id, message_name, topic, payload FROM outbox ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        )
        return [
            (
                row_id,
                Message(
                    message_name=name,
                    topic=topic,
                    payload=json.loads(payload),
                    message_id=uuid.UUID(event_id),
                ),
            )
            for row_id, event_id, name, topic, payload in rows
        ]

    async def delete_pending(self, ids: list[int]) -> None:
        await self._sql(lambda: self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids]))

    async def first_pending(self) -> int | None:
        """The id of the oldest row not yet on the bus (None: every row is)."""
        row = await self._sql(lambda: self._db.execute("SELECT MIN(id) FROM outbox").fetchone())
        return None if row is None or row[0] is None else int(row[0])


class LocalOutbox:
    """Records events in ``store``'s outbox and relays them to ``broker``; ``start`` / ``stop`` it."""

    def __init__(
        self,
        store: OutboxFileStore,
        broker: MessageBroker,
        *,
        within: float = 5.0,
        batch: int = 100,
        poll_interval: float = 0.5,
        busy_poll: float = 0.005,
    ) -> None:
        self.store = store
        self.broker = broker
        self.within = within
        self.batch = batch
        self.poll_interval = poll_interval
        self.busy_poll = busy_poll  # how soon to look again while a waiting row is another worker's to send
        self.relayed = 0
        self.bus_down = False  # the last relay attempt could not publish: RPCs do not wait for it
        self._waiters: list[tuple[int, asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()
        self._lock_fd: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def record_event(self, event: FileUploaded | FileProcessed, message: Message) -> int:
        """Commit the event with its state change, then wait (at most ``within`` s) until it is on the
        bus, unless the relay's last attempt found the bus down; the outbox row's id."""
        row = await self.store.record_event(event, message)
        if self.bus_down:
            self._wake.set()
        elif not await self.published(row):
            logger.warning(
                "event %s is committed but not yet on the event bus; it is published once the bus is back",
                message.message_id,
            )
        return row

    async def published(self, row: int) -> bool:
        """Wait until outbox row ``row`` is on the bus: True; False after ``within`` seconds, or as soon
        as a relay attempt finds the bus down."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append((row, future))
        self._wake.set()
        try:
            return await asyncio.wait_for(future, self.within)
        except TimeoutError:
            return False
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove((row, future))

    def start(self) -> None:
        if self._task is None:
            path = self.store.root / LOCK_FILE
            self._lock_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Stop relaying; what is left stays in the outbox for the next start."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock too
            self._lock_fd = None

    async def _run(self) -> None:
        delay, busy = self.poll_interval, self.busy_poll
        while True:
            held = False
            try:
                held = await self._relay()
                self.bus_down = self.bus_down and not held
                delay = self.poll_interval
            except cqrs.UnavailableError as exc:
                self.bus_down = True
                self._release(None, published=False)
                logger.warning("outbox relay: %s; retrying in %.1f s", exc, delay)
                delay = min(delay * 2, 5.0)
            except Exception:  # logged and retried: the rows stay in the outbox
                logger.exception("outbox relay failed; retrying in %.1f s", delay)
                delay = min(delay * 2, 5.0)
            try:
                await self._settle()
            except Exception:
                logger.exception("outbox relay: cannot read the outbox")
            # while another worker holds the lock, look again soon, then less often
            busy = self.busy_poll if held else min(busy * 2, 0.1)
            wait = busy if self._waiters and delay == self.poll_interval else delay
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    async def _relay(self) -> bool:
        """Publish every pending row in id order, if this worker can take the lock (False: another
        worker holds it). Stored rows are deleted while the next ones are sent: one statement for
        those stored since the last one began."""
        if not self._try_lock():
            return False
        try:
            while rows := await self.store.pending(self.batch):
                stored: list[int] = []
                deleting: asyncio.Task[None] | None = None
                try:
                    for row_id, message in rows:
                        await self.broker.send_message(message)
                        stored.append(row_id)
                        self._release(row_id)
                        if deleting is None or deleting.done():
                            if deleting is not None:
                                deleting.result()  # a failed delete ends the round (the rows go again)
                            deleting = asyncio.ensure_future(self._delete(stored))
                finally:
                    await self._delete(stored, after=deleting)
        finally:
            self._unlock()
        return True

    async def _delete(self, stored: list[int], after: asyncio.Task[None] | None = None) -> None:
        """Delete the rows in ``stored`` (emptying it), once ``after`` has finished."""
        if after is not None:
            await after
        while stored:
            ids, stored[:] = stored[:], []
            await self.store.delete_pending(ids)
            self.relayed += len(ids)

    def _release(self, through: int | None, *, published: bool = True) -> None:
        """Tell the waiters of rows up to ``through`` (None: all) whether theirs are published (rows go
        out in id order) or not to wait any longer."""
        for row, future in self._waiters:
            if (through is None or row <= through) and not future.done():
                future.set_result(published)

    async def _settle(self) -> None:
        """Tell the waiters whose rows are on the bus, sent by this worker or another."""
        if not self._waiters:
            return
        first = await self.store.first_pending()
        self._release(None if first is None else first - 1)

    def _try_lock(self) -> bool:
        if self._lock_fd is None:
            return False
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
