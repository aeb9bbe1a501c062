"""Where WatchFileEvents reads: the bus (every process's events) or, without one, this process.

Both number events by one sequence a client resumes with (``after_sequence``): the JetStream stream
sequence on the bus, the audit log's row number without it. ``open(after)`` returns once the feed is
live, so nothing published afterwards is missed; iterating replays what came after ``after`` (``None``:
nothing), then goes live, in sequence order, with no gap and no duplicate. An ``after`` past the last
event is refused (``cqrs.OutOfRangeError``): the events numbered up to it would be skipped unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

import cqrs
from examples.files.domain import FILE_EVENTS_TOPIC, FileEvent, FileEventNotice
from examples.files.fanout import EventFanout, Subscription
from examples.files.store import AuditRow, FileStore

if TYPE_CHECKING:  # the bus needs the ``bus`` extra; a demo without one never imports it
    from cqrs.bus import BusReader, Follow


class Feed(Protocol):
    """One watcher's events."""

    @property
    def last_sequence(self) -> int:
        """The sequence to resume after: the last event handed out, else the starting point."""
        ...

    def until(self, stop: asyncio.Future[Any]) -> AsyncGenerator[FileEvent, None]:
        """The events until ``stop`` is done: the iteration then ends, even while waiting for one."""
        ...


class WatchSource(Protocol):
    def open(self, after: int | None) -> contextlib.AbstractAsyncContextManager[Feed]:
        """A live feed of the events after sequence ``after`` (``None``: from now on)."""
        ...


class BusWatchSource:
    """Reads FileEventNotices from the bus: every event of every process, by stream sequence."""

    def __init__(self, reader: BusReader) -> None:
        self._reader = reader

    @contextlib.asynccontextmanager
    async def open(self, after: int | None) -> AsyncIterator[Feed]:
        async with self._reader.follow([FILE_EVENTS_TOPIC], after=after) as follow:
            yield _BusFeed(follow)

    async def close(self) -> None:
        """Close the reader's connection (after the server has drained)."""
        await self._reader.close()


class _BusFeed:
    def __init__(self, follow: Follow) -> None:
        self._follow = follow

    @property
    def last_sequence(self) -> int:
        return self._follow.last_sequence

    async def until(self, stop: asyncio.Future[Any]) -> AsyncGenerator[FileEvent, None]:
        async with contextlib.aclosing(self._follow.until(stop)) as events:
            async for sequence, notice in events:
                if isinstance(notice, FileEventNotice) and notice.payload is not None:
                    yield FileEvent.from_dict({**notice.payload, "sequence": sequence})


class LocalWatchSource:
    """This process's events: replayed from the audit log, live from the in-process fan-out."""

    def __init__(self, store: FileStore, fanout: EventFanout) -> None:
        self._store = store
        self._fanout = fanout

    @contextlib.asynccontextmanager
    async def open(self, after: int | None) -> AsyncIterator[Feed]:
        with self._fanout.subscribe() as subscription:  # first: nothing falls between replay and live
            last = await self._store.last_audit_seq()
            if after is None:
                yield _LocalFeed(subscription, [], last)
            elif after > last:
                raise cqrs.OutOfRangeError(
                    f"sequence {after} is past the last event ({last}); start after {last} or less",
                    reason="SEQUENCE_OUT_OF_RANGE",
                    metadata={"last_sequence": str(last)},
                )
            else:
                yield _LocalFeed(subscription, await self._store.audit_rows(after), after)


class _LocalFeed:
    def __init__(self, subscription: Subscription, replay: list[AuditRow], after: int) -> None:
        self._subscription = subscription
        self._replay = replay
        self._last = after

    @property
    def last_sequence(self) -> int:
        return self._last

    async def until(self, stop: asyncio.Future[Any]) -> AsyncGenerator[FileEvent, None]:
        for row in self._replay:
            if stop.done():
                return
            self._last = row.seq
            yield _from_row(row)
        while True:
            event = await self._subscription.next(stop)
            if event is None:
                return
            if event.sequence > self._last:  # the replay may have held it already
                self._last = event.sequence
                yield event


def _from_row(row: AuditRow) -> FileEvent:
    detail = row.detail
    return FileEvent(
        sequence=row.seq,
        kind=row.kind,
        file_id=row.file_id,
        occurred_at=row.occurred_at,
        name=str(detail.get("name", "")),
        status="" if row.status == "uploaded" else row.status,
        size=int(detail.get("size", 0)),
        sha256=str(detail.get("sha256", "")),
        line_count=int(detail.get("line_count", 0)),
    )
