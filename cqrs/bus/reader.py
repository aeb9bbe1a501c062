"""The reading side for live streams: follow topics of the stream from a sequence, replay then live.

Unlike :class:`~cqrs.bus.BusConsumer` (a durable group that handles each event once), a
:class:`BusReader` serves readers that each want every event in stream order from a point they
choose, such as a gRPC watch resuming with ``after_sequence``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from cqrs.bus import _nats
from cqrs.bus.config import EVENT_HEADER, BusConfig
from cqrs.events.event import Event

__all__ = ["BusReader", "Follow"]

logger = logging.getLogger("cqrs.bus")


class BusReader:
    """Follows topics of the stream for any number of readers over one connection.

    Each :meth:`follow` is an ordered, ephemeral consumer that yields ``(stream sequence, event)``
    in stream order, rebuilt as the class of ``event_types`` its ``Cqrs-Event`` header names
    (events of other types are skipped). It connects on first use; :meth:`close` ends it.
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

    async def start(self) -> JetStreamContext:
        """Connect (within ``connect_timeout``, else :class:`~cqrs.UnavailableError`) and make sure the
        stream exists; the JetStream context."""
        async with self._starting:
            if self._js is None:
                nc = await _nats.connect(self.url, self.connect_timeout, buffer_while_reconnecting=False)
                js = nc.jetstream(timeout=self.connect_timeout)
                try:
                    await _nats.ensure_stream(js, self.config)
                except BaseException:
                    await nc.close()
                    raise
                self._nc, self._js = nc, js
            return self._js

    async def close(self) -> None:
        """Close the connection; open follows end with an error at their next fetch."""
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            await nc.close()

    async def last_sequence(self) -> int:
        """The stream's last sequence (0 while it is empty)."""
        js = await self.start()
        info = await js.stream_info(self.config.stream)
        return int(info.state.last_seq)

    def follow(self, topics: Sequence[str], *, after: int | None = None) -> Follow:
        """The events of ``topics`` (topics or event names) after sequence ``after``; ``None``: only
        those published from now on. Use as ``async with reader.follow(...) as events``: on entry
        the consumer exists, so nothing published afterwards is missed."""
        if not topics:
            raise ValueError("follow needs at least one topic")
        if after is not None and after < 0:
            raise ValueError(f"after must be 0 or more, got {after}")
        return Follow(self, [self.config.topic_filter(topic) for topic in topics], after)


class Follow:
    """One reader's ordered consumer: iterate for ``(sequence, event)``.

    A fetch takes at most ``batch`` events and the next is asked for only when they have been
    read, so a slow reader holds nothing up but itself. When the consumer or the connection is
    lost (a NATS restart), it is made again from the sequence after the last one yielded: no gap,
    no duplicate. Leaving the ``async with`` deletes the consumer and leaves no task behind.
    """

    def __init__(self, reader: BusReader, filters: list[str], after: int | None) -> None:
        self._reader = reader
        self._filters = filters
        self._after = after
        self._next = 0
        self._sub: JetStreamContext.PullSubscription | None = None
        self._consumer: str | None = None
        self._buffer: list[Msg] = []

    @property
    def last_sequence(self) -> int:
        """The sequence to resume after: that of the last event yielded, or the start point."""
        return self._next - 1

    async def __aenter__(self) -> Follow:
        js = await self._reader.start()
        if self._after is None:
            self._next = await self._reader.last_sequence() + 1
        else:
            self._next = self._after + 1
        await self._open(js)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._drop()

    def __aiter__(self) -> AsyncIterator[tuple[int, Event]]:
        return self._events()

    async def _events(self) -> AsyncIterator[tuple[int, Event]]:
        while True:
            if not self._buffer:
                self._buffer = await self._fetch()
                continue
            msg = self._buffer.pop(0)
            sequence = msg.metadata.sequence.stream
            if sequence < self._next:
                continue  # delivered again after a re-made consumer
            self._next = sequence + 1
            event = self._rebuild(msg)
            if event is not None:
                yield sequence, event

    async def _fetch(self) -> list[Msg]:
        """The next messages, waiting for at least one; re-makes the consumer when it is lost."""
        delay = 0.05
        while True:
            try:
                if self._sub is None:
                    await self._open(await self._reader.start())
                assert self._sub is not None
                return await self._take(self._sub)
            except nats.errors.TimeoutError:
                continue  # nothing new; a lost consumer answers a fetch with an error, not silence
            except (nats.errors.Error, nats.js.errors.Error, OSError, TimeoutError) as exc:
                logger.debug("bus follow %s: %r; making the consumer again", self._filters, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            await self._drop()

    async def _take(self, sub: JetStreamContext.PullSubscription) -> list[Msg]:
        """The first message as soon as it is stored, with those already waiting behind it (at most
        ``batch``): a fetch of many that finds none waits for all of them, not for the first."""
        msgs = await sub.fetch(1, timeout=self._reader.fetch_wait)
        waiting = min(self._reader.batch - 1, msgs[-1].metadata.num_pending or 0) if msgs else 0
        if waiting > 0:
            with contextlib.suppress(nats.errors.TimeoutError):
                msgs += await sub.fetch(waiting, timeout=self._reader.fetch_wait)
        return msgs

    async def _open(self, js: JetStreamContext) -> None:
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
        self._sub = await js.pull_subscribe_bind(consumer=info.name, stream=self._reader.config.stream)
        self._buffer = []

    async def _drop(self) -> None:
        sub, name, self._sub, self._consumer = self._sub, self._consumer, None, None
        self._buffer = []
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
