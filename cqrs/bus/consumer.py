"""The consuming side: one subscriber group's durable pull consumer, feeding an EventMediator.

Every group has one durable named after it: the replicas of a group fetch from the same durable and so
share its work, and each group (a durable of its own) sees every event.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from cqrs import observe
from cqrs.bus import _nats
from cqrs.bus.config import EVENT_HEADER, MSG_ID_HEADER, BusConfig, check_group
from cqrs.events.event import Event
from cqrs.events.mediator import EventMediator
from cqrs.exceptions import CqrsConfigurationError

__all__ = ["BusConsumer", "ConsumerStats"]

logger = logging.getLogger("cqrs.bus")


@dataclasses.dataclass
class ConsumerStats:
    """What a :class:`BusConsumer` did with the messages it fetched (monotonic counters)."""

    handled: int = 0
    duplicates: int = 0  # a redelivery (or a re-publish) of an event this consumer handled: acked, dropped
    unbound: int = 0  # an event type no handler here is bound to: acked, skipped
    failed: int = 0  # the mediator raised: nak'ed, redelivered after retry_delay
    undecodable: int = 0  # not an event this consumer can rebuild: terminated, never redelivered


class BusConsumer:
    """Runs subscriber group ``group``: fetches from its durable and sends each event to ``mediator``.

    - An event is acked after ``mediator.send`` returns; a failure naks it for redelivery (the mediator
      must use ``event_failure_policy="fail"``, or a failed handler would look handled).
    - Events of one subject (one ordering key) are handled one after another, in stream order; other
      subjects run concurrently, at most ``max_in_flight`` messages held at once.
    - Event ids handled recently (the last ``dedup_window``) are remembered: a redelivery is acked and
      dropped, so a group handles each event once even when an ack is lost.
    - Messages held longer than ``ack_wait`` are kept from redelivery by in-progress signals.
    - A fetch waits at most ``fetch_wait`` seconds for messages (how late ``stop()`` may begin).
    - ``stop()`` stops fetching, lets the held messages finish (at most ``drain_timeout`` seconds, then
      cancels them: they are redelivered later) and closes the connection; no task is left behind.
    """

    def __init__(
        self,
        mediator: EventMediator,
        *,
        group: str,
        url: str = "nats://127.0.0.1:4222",
        config: BusConfig | None = None,
        max_in_flight: int = 64,
        ack_wait: float = 30.0,
        dedup_window: int = 10_000,
        retry_delay: float = 1.0,
        drain_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        fetch_wait: float = 0.5,
    ) -> None:
        if max_in_flight < 1 or dedup_window < 1:
            raise ValueError("max_in_flight and dedup_window must be >= 1")
        if mediator.settings.event_failure_policy != "fail":
            raise ValueError(
                "BusConsumer acks an event once its handlers succeeded, so its mediator must raise when one "
                "fails: EventMediator(..., settings=MediatorSettings(event_failure_policy='fail'))"
            )
        self.mediator = mediator
        self.group = check_group(group)
        self.url = url
        self.config = config if config is not None else BusConfig()
        self.max_in_flight = max_in_flight
        self.ack_wait = ack_wait
        self.retry_delay = retry_delay
        self.drain_timeout = drain_timeout
        self.connect_timeout = connect_timeout
        self.fetch_wait = fetch_wait
        self.stats = ConsumerStats()
        self._types = _event_types(mediator)
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._window = dedup_window
        self._held: dict[str, Msg] = {}  # event id -> the delivery being handled
        self._lanes: dict[str, collections.deque[Msg]] = {}
        self._lane_tasks: set[asyncio.Task[None]] = set()
        self._room = asyncio.Condition()
        self._in_flight = 0
        self._stopping = False
        self._nc: Client | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Connect, create the stream and the group's durable if missing, and start consuming."""
        if self._nc is not None:
            return
        self._stopping = False
        nc = await _nats.connect(self.url, self.connect_timeout, buffer_while_reconnecting=True)
        try:
            js = nc.jetstream()
            await _nats.ensure_stream(js, self.config)
            subscription = await js.pull_subscribe(
                self.config.subjects,
                durable=self.group,
                stream=self.config.stream,
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.ALL,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=self.ack_wait,
                    max_deliver=-1,
                    max_ack_pending=max(1000, self.max_in_flight * 4),
                ),
            )
        except BaseException:
            await nc.close()
            raise
        self._nc = nc
        self._tasks = [
            asyncio.create_task(self._fetch(subscription), name=f"bus:{self.group}:fetch"),
            asyncio.create_task(self._keep_alive(), name=f"bus:{self.group}:in-progress"),
        ]

    async def stop(self) -> None:
        """Stop fetching, finish (or after ``drain_timeout`` cancel) held messages, close."""
        tasks, self._tasks = self._tasks, []
        # the fetch loop first: its last fetch returns (within fetch_wait) and nothing new is asked for,
        # so no message arrives unseen, to wait out ack_wait before its redelivery
        self._stopping = True
        async with self._room:
            self._room.notify_all()
        if tasks:
            _, late = await asyncio.wait(tasks[:1], timeout=self.fetch_wait + 1.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks[:1], return_exceptions=True)
        if self._lane_tasks:
            _, late = await asyncio.wait(set(self._lane_tasks), timeout=self.drain_timeout)
            for task in late:
                task.cancel()
            if late:
                logger.warning(
                    "bus group %s: %d lanes cut short at stop (redelivered later)", self.group, len(late)
                )
                await asyncio.gather(*late, return_exceptions=True)
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), self.drain_timeout)  # acks were sent already

    async def __aenter__(self) -> BusConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _fetch(self, subscription: JetStreamContext.PullSubscription) -> None:
        """Fetch as many messages as there is room for; hand each to the lane of its subject."""
        delay = 0.05
        while not self._stopping:
            async with self._room:
                await self._room.wait_for(lambda: self._in_flight < self.max_in_flight or self._stopping)
                room = self.max_in_flight - self._in_flight
            if self._stopping:
                return
            try:
                messages = await subscription.fetch(room, timeout=self.fetch_wait)
            except nats.errors.TimeoutError:
                continue  # nothing new within the timeout
            except (nats.errors.Error, OSError) as exc:  # NATS down or restarting: try again
                logger.debug("bus group %s: fetch failed (%r), retrying", self.group, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.05
            for msg in messages:
                self._in_flight += 1
                lane = self._lanes.get(msg.subject)
                if lane is not None:
                    lane.append(msg)
                    continue
                self._lanes[msg.subject] = collections.deque((msg,))
                task = asyncio.create_task(self._run_lane(msg.subject))
                self._lane_tasks.add(task)
                task.add_done_callback(self._lane_tasks.discard)

    async def _run_lane(self, subject: str) -> None:
        """Handle one subject's messages in order; the lane ends when it is empty."""
        lane = self._lanes[subject]
        try:
            while lane:
                msg = lane[0]
                try:
                    await self._handle(msg)
                finally:
                    lane.popleft()
                    self._in_flight -= 1
                    async with self._room:
                        self._room.notify()
        finally:
            del self._lanes[subject]
            self._in_flight -= len(lane)  # cut short at stop: those are redelivered later

    async def _handle(self, msg: Msg) -> None:
        headers = msg.headers or {}
        try:
            data = json.loads(msg.data)
        except ValueError:
            logger.exception("bus group %s: a message on %s is not JSON", self.group, msg.subject)
            self.stats.undecodable += 1
            await _settle(msg.term())
            return
        # the event's own id: a copy published under another Nats-Msg-Id is still the same event
        event_id = (
            str(data.get("event_id") or headers.get(MSG_ID_HEADER, "")) if isinstance(data, dict) else ""
        )
        if event_id in self._seen:
            self.stats.duplicates += 1
            await _settle(msg.ack())
            return
        if event_id and event_id in self._held:
            return  # a redelivery while the first delivery is being handled: that one will ack
        event_type = self._types.get(headers.get(EVENT_HEADER, ""))
        if event_type is None:
            self.stats.unbound += 1
            await _settle(msg.ack())
            return
        try:
            event = event_type.from_dict(data)
        except Exception:
            logger.exception(
                "bus group %s: cannot rebuild %s from %s", self.group, event_type.__qualname__, msg.subject
            )
            self.stats.undecodable += 1
            await _settle(msg.term())
            return
        if event_id:
            self._held[event_id] = msg
        try:
            await observe.consumed(self.group, msg, self.mediator.send(event))
        except Exception:
            logger.exception(
                "bus group %s: handling %s %s failed", self.group, event_type.__qualname__, event_id
            )
            self.stats.failed += 1
            await _settle(msg.nak(delay=self.retry_delay))
            return
        finally:
            self._held.pop(event_id, None)
        self._remember(event_id)
        self.stats.handled += 1
        await _settle(msg.ack())

    def _remember(self, event_id: str) -> None:
        if event_id:
            self._seen[event_id] = None
            if len(self._seen) > self._window:
                self._seen.popitem(last=False)

    async def _keep_alive(self) -> None:
        """Tell JetStream, every third of ``ack_wait``, that the held messages are still being handled."""
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            for lane in list(self._lanes.values()):
                for msg in list(lane):
                    await _settle(msg.in_progress())


async def _settle(reply: Any) -> None:
    """Send an ack, nak, term or in-progress; a failure (NATS down) only means a redelivery later."""
    try:
        await reply
    except Exception as exc:
        logger.debug("bus: ack/nak not sent (%r); JetStream will redeliver", exc)


def _event_types(mediator: EventMediator) -> dict[str, type[Event]]:
    """The classes bound in the mediator's map, by the name publishers put in the ``Cqrs-Event`` header."""
    types: dict[str, type[Event]] = {}
    for event_type in mediator.event_map:
        other = types.setdefault(event_type.__name__, event_type)
        if other is not event_type:
            first, second = (f"{t.__module__}.{t.__qualname__}" for t in (other, event_type))
            raise CqrsConfigurationError(
                f"{first} and {second} share the name {event_type.__name__!r}, which is how the bus "
                f"names an event: rename one"
            )
    return types
