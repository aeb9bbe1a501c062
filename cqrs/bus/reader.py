"""The reading side for live streams: follow topics of the stream from a sequence, replay then live.

Unlike :class:`~cqrs.bus.BusConsumer` (a durable group that handles each event once), a
:class:`BusReader` serves readers that each want every event in stream order from a point they
choose, such as a gRPC watch resuming with ``after_sequence``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Iterable, Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    DEFAULT_PREFIX,
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    Header,
    StatusCode,
    StreamInfo,
)

from cqrs.bus import _nats
from cqrs.bus.config import EVENT_HEADER, BusConfig
from cqrs.errors import OutOfRangeError, UnavailableError
from cqrs.events.event import Event

__all__ = ["BusReader", "Follow"]

logger = logging.getLogger("cqrs.bus")

_GRACE = 2.0  # seconds past a pull request's expiry before its silence means the consumer is lost


class _Lost(Exception):
    """The follow's consumer, or the reader's connection, is gone: make the consumer again."""


class BusReader:
    """Follows topics of the stream for any number of readers over one connection.

    Each :meth:`follow` is an ordered, ephemeral consumer that yields ``(stream sequence, event)``
    in stream order, rebuilt as the class of ``event_types`` its ``Cqrs-Event`` header names
    (events of other types are skipped). It connects on first use, and again when nats-py has closed
    the connection for good; :meth:`close` ends it.
    """

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        event_types: Iterable[type[Event]],
        config: BusConfig | None = None,
        connect_timeout: float = 5.0,
        batch: int = 256,
        fetch_wait: float = 1.0,
    ) -> None:
        self.url = url
        self.config = config if config is not None else BusConfig()
        self.connect_timeout = connect_timeout
        self.batch = batch
        self.fetch_wait = fetch_wait
        self.types = {event_type.__name__: event_type for event_type in event_types}
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._starting = asyncio.Lock()
        self._closes = 0  # close() counts: a start under way when it ran gives its connection up

    async def start(self) -> JetStreamContext:
        """Connect (within ``connect_timeout``, waiting for a concurrent start included, else
        :class:`~cqrs.UnavailableError`) and make sure the stream exists; the JetStream context."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        closes = self._closes
        async with _nats.starting(self._starting, self.url, deadline):
            js = self._js
            if js is None or self._nc is None or self._nc.is_closed:  # closed for good by nats-py too
                nc = await _nats.connect(self.url, deadline - loop.time(), buffer_while_reconnecting=False)
                js = await _nats.with_stream(
                    nc,
                    self.config,
                    deadline=deadline,
                    request_timeout=self.connect_timeout,
                    wanted=lambda: closes == self._closes,
                )
                self._nc, self._js = nc, js
            return js

    async def close(self) -> None:
        """Close the connection; a follow still open connects again when it next asks for events."""
        nc, self._nc, self._js = self._nc, None, None
        self._closes += 1
        if nc is not None and not nc.is_closed:
            await nc.close()

    async def last_sequence(self) -> int:
        """The stream's last sequence (0 while it is empty)."""
        info = await self.stream_info(await self.start())
        return int(info.state.last_seq)

    async def stream_info(self, js: JetStreamContext) -> StreamInfo:
        """The stream's info, creating the stream first if it is missing (a NATS with a new store)."""
        try:
            return await js.stream_info(self.config.stream)
        except nats.js.errors.NotFoundError:
            await _nats.ensure_stream(js, self.config)
            return await js.stream_info(self.config.stream)

    def follow(self, topics: Sequence[str], *, after: int | None = None) -> Follow:
        """The events of ``topics`` (topics or event names) after sequence ``after``; ``None``: only
        those published from now on. Use as ``async with reader.follow(...) as events``: on entry
        the consumer exists, so nothing published afterwards is missed. Entering raises
        :class:`~cqrs.OutOfRangeError` when ``after`` is past the stream's last sequence."""
        if not topics:
            raise ValueError("follow needs at least one topic")
        if after is not None and after < 0:
            raise ValueError(f"after must be 0 or more, got {after}")
        return Follow(self, [self.config.topic_filter(topic) for topic in topics], after)


_UNREADABLE = (UnavailableError, nats.errors.Error, nats.js.errors.Error, OSError, TimeoutError)
"""What keeps a follow from starting: the bus is down, restarting or slow."""


def past_the_end(after: int, last: int, *, reset: bool = False) -> OutOfRangeError:
    """The answer to a start after sequence ``after`` when the last one stored is ``last``: following
    from there would skip, unseen, the events numbered up to ``after`` once they exist. ``reset``:
    the stream was made anew under a follow, so its sequences name other events."""
    text = (
        f"the event stream was reset after sequence {after}; it now ends at {last}: start again"
        if reset
        else f"sequence {after} is past the last event ({last}); start after {last} or less"
    )
    return OutOfRangeError(
        text,
        reason="SEQUENCE_OUT_OF_RANGE",
        metadata={"last_sequence": str(last)},
    )


class Follow:
    """One reader's ordered consumer: iterate for ``(sequence, event)``.

    One pull request at a time asks JetStream for up to ``batch`` events, which arrive as they are
    stored; the next is asked for once they have all arrived, so a slow reader holds nothing up but
    itself and holds at most ``batch`` events. A request expires after ``fetch_wait`` seconds and is
    renewed; one that is answered neither by an event nor by its expiry means the consumer or the
    connection is lost (a NATS restart), and the consumer is made again from the sequence after the
    last one yielded: no gap, no duplicate. Leaving the ``async with`` deletes the consumer and leaves
    no task behind.
    """

    def __init__(self, reader: BusReader, filters: list[str], after: int | None) -> None:
        self._reader = reader
        self._filters = filters
        self._after = after
        self._next = 0
        self._created: object = None  # when the stream was made: a reset stream has another time
        self._sub: Subscription | None = None
        self._consumer: str | None = None
        self._asked = 0  # events the open pull request may still bring (0: none is open)
        self._delivered = 0  # the consumer's sequence of the last event taken from it
        self._arrived: collections.deque[Msg] = collections.deque()  # delivered, not yet read
        self._waiter: asyncio.Future[bool] | None = None  # set while the reader waits for one

    @property
    def last_sequence(self) -> int:
        """The sequence to resume after: that of the last event yielded, or the start point."""
        return self._next - 1

    async def __aenter__(self) -> Follow:
        try:
            js = await self._reader.start()
            info = await self._reader.stream_info(js)
            last = int(info.state.last_seq)
            if self._after is not None and self._after > last:
                raise past_the_end(self._after, last)
            self._next = (last if self._after is None else self._after) + 1
            self._created = info.created
            await self._open(js)
        except BaseException as exc:  # cancelled too: no subscription or consumer is left behind
            await self._drop()
            if isinstance(exc, _UNREADABLE):
                logger.warning("bus follow %s: cannot start (%r)", self._filters, exc)
                raise _nats.unavailable("the event bus cannot be read now") from exc
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._drop()

    def __aiter__(self) -> AsyncGenerator[tuple[int, Event], None]:
        return self._events(None)

    def until(self, stop: asyncio.Future[Any]) -> AsyncGenerator[tuple[int, Event], None]:
        """The events until ``stop`` is done: the iteration then ends, even while it waits for an
        event or to make the consumer again (not during a JetStream request already sent)."""
        return self._events(stop)

    async def _events(self, stop: asyncio.Future[Any] | None) -> AsyncGenerator[tuple[int, Event], None]:
        if stop is not None:
            stop.add_done_callback(self._wake)
        try:
            while True:
                msg = await self._receive(stop)
                if msg is None:
                    return
                sequence = msg.metadata.sequence.stream
                if sequence < self._next:
                    continue  # delivered again after a re-made consumer
                self._next = sequence + 1
                event = self._rebuild(msg)
                if event is not None:
                    yield sequence, event
        finally:
            if stop is not None:
                stop.remove_done_callback(self._wake)

    async def _receive(self, stop: asyncio.Future[Any] | None) -> Msg | None:
        """The next stored message, waiting for one (None once ``stop`` is done); re-makes the
        consumer when it is lost."""
        delay = 0.05
        while True:
            try:
                if stop is not None and stop.done():
                    return None
                if self._sub is None:
                    await self._reopen(await self._reader.start())
                if self._asked == 0:
                    await self._ask()
                if not self._arrived:
                    await self._wait(self._reader.fetch_wait + _GRACE)
                    if not self._arrived:
                        continue  # woken without a message, by ``stop``: check it again
                msg = self._arrived.popleft()
                headers = msg.headers or {}
                status = headers.get(Header.STATUS)
                if not status:
                    self._asked -= 1
                    delivered = msg.metadata.sequence.consumer
                    if delivered != self._delivered + 1:  # lost in flight with a dropped connection
                        raise _Lost(f"delivery {delivered} came after {self._delivered}")
                    self._delivered = delivered
                    return msg
                if status not in (StatusCode.REQUEST_TIMEOUT, StatusCode.NO_MESSAGES):
                    raise _Lost(f"status {status} {headers.get(Header.DESCRIPTION, '')}")
                self._asked = 0  # the request expired: ask again
            except (
                _Lost,
                UnavailableError,
                nats.errors.Error,
                nats.js.errors.Error,
                OSError,
                TimeoutError,
            ) as exc:
                logger.debug("bus follow %s: %r; making the consumer again", self._filters, exc)
                await self._drop()
                await self._park(delay, True)  # the backoff, cut short by ``stop``
                delay = min(delay * 2, 1.0)

    async def _wait(self, timeout: float) -> None:
        """Until a message arrives or :meth:`_wake` is called; :class:`_Lost` after ``timeout``
        seconds of neither (the request was answered by nothing, not even its expiry)."""
        if not await self._park(timeout, False):
            raise _Lost(f"nothing arrived for {timeout:g} s")

    async def _park(self, seconds: float, elapsed: bool) -> bool:
        """Wait until :meth:`_wake` (True) or for ``seconds`` (``elapsed``)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(seconds, _settle, waiter, elapsed)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _wake(self, _: object = None) -> None:
        """End the current wait, if any (also ``stop``'s done-callback)."""
        if self._waiter is not None:
            _settle(self._waiter, True)

    async def _arrive(self, msg: Msg) -> None:
        """The subscription's callback: keep ``msg`` for the reader and wake it."""
        self._arrived.append(msg)
        self._wake()

    async def _ask(self) -> None:
        """Open a pull request for up to ``batch`` events, expiring after ``fetch_wait`` seconds."""
        nc, sub = self._reader._nc, self._sub
        if nc is None or sub is None or self._consumer is None:
            raise _Lost("the reader is closed")
        request = {"batch": self._reader.batch, "expires": int(self._reader.fetch_wait * 1e9)}
        subject = f"{DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{self._reader.config.stream}.{self._consumer}"
        await nc.publish(subject, json.dumps(request).encode(), reply=sub.subject)
        self._asked = self._reader.batch

    async def _reopen(self, js: JetStreamContext) -> None:
        """Make the consumer again after the last event yielded, unless the stream is not the one the
        follow began on (deleted and made anew): its sequences name other events, so the follow ends
        with :class:`~cqrs.OutOfRangeError`."""
        info = await self._reader.stream_info(js)
        last = int(info.state.last_seq)
        if info.created != self._created or last < self.last_sequence:
            raise past_the_end(self.last_sequence, last, reset=True)
        await self._open(js)

    async def _open(self, js: JetStreamContext) -> None:
        nc = self._reader._nc
        if nc is None:
            raise _Lost("the reader is closed")
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, self._next),
            ack_policy=AckPolicy.NONE,
            mem_storage=True,
            num_replicas=1,
            # a reader that vanished without deleting it (a killed process) leaves nothing for long
            inactive_threshold=max(5.0, 5 * self._reader.fetch_wait),
        )
        if len(self._filters) == 1:
            config.filter_subject = self._filters[0]
        else:
            config.filter_subjects = list(self._filters)
        info = await js.add_consumer(self._reader.config.stream, config)
        self._consumer = info.name
        self._sub = await nc.subscribe(nc.new_inbox(), cb=self._arrive)

    async def _drop(self) -> None:
        sub, name, self._sub, self._consumer = self._sub, self._consumer, None, None
        self._asked = self._delivered = 0
        self._arrived.clear()  # the next consumer starts after the last one yielded
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        js = self._reader._js
        if name is not None and js is not None:
            with contextlib.suppress(Exception):
                await js.delete_consumer(self._reader.config.stream, name)

    def _rebuild(self, msg: Msg) -> Event | None:
        event_type = self._reader.types.get((msg.headers or {}).get(EVENT_HEADER, ""))
        if event_type is None:
            return None
        try:
            data: Any = json.loads(msg.data)
            return event_type.from_dict(data)
        except Exception:
            logger.exception("bus follow: cannot rebuild %s from %s", event_type.__qualname__, msg.subject)
            return None


def _settle(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)
