"""Live fan-out of file events to WatchFileEvents subscribers.

``publish`` never waits: it is called by event handlers between the messages of someone else's
stream, so a subscriber that does not keep up must not slow that stream down. Each subscriber has
a bounded queue; when it is full the subscriber is dropped (its queue emptied, memory released)
and its next read raises ``SubscriberFellBehind``, which the Watch handler ends with
RESOURCE_EXHAUSTED. A dropped subscriber can reconnect and read the gap from ListFiles.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from examples.files.domain import FileEvent

DEFAULT_QUEUE_SIZE = 256


class SubscriberFellBehind(Exception):
    """The subscriber's queue overflowed: it was dropped so the producers never wait."""


class Subscription:
    """One subscriber's bounded queue of events."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._queue: collections.deque[FileEvent] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None  # set while the reader waits
        self.dropped = False

    def _offer(self, event: FileEvent) -> None:
        if self.dropped:
            return
        if len(self._queue) >= self._capacity:
            self.dropped = True
            self._queue.clear()
        else:
            self._queue.append(event)
        self._wake()

    def _wake(self, _: object = None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self, stop: asyncio.Future[Any] | None = None) -> FileEvent | None:
        """The next event, waiting for one; None once ``stop`` is done, even with events queued or
        while waiting; raises SubscriberFellBehind once dropped."""
        if stop is None:
            return await self._next(None)
        stop.add_done_callback(self._wake)
        try:
            return await self._next(stop)
        finally:
            stop.remove_done_callback(self._wake)

    async def _next(self, stop: asyncio.Future[Any] | None) -> FileEvent | None:
        while not self._queue and not self.dropped and not (stop is not None and stop.done()):
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if stop is not None and stop.done():
            return None  # the stop wins over queued events and over a drop
        if self.dropped:
            raise SubscriberFellBehind(f"more than {self._capacity} events were waiting to be sent")
        return self._queue.popleft()

    @property
    def pending(self) -> int:
        return len(self._queue)


class EventFanout:
    """Offers each event to every current subscriber (numbering those that have no sequence)."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._sequence = 0

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """A subscription receiving every event published while the block runs."""
        subscription = Subscription(self.queue_size)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, event: FileEvent) -> FileEvent:
        """Offer ``event`` to every subscriber, without waiting; one with sequence 0 is numbered
        after the last one published first. The event as offered."""
        if event.sequence <= 0:
            event = dataclasses.replace(event, sequence=self._sequence + 1)
        self._sequence = max(self._sequence, event.sequence)
        numbered = event
        for subscription in self._subscribers:
            subscription._offer(numbered)
        return numbered
