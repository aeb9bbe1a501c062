"""The consuming side: one subscriber group's durable pull consumers, feeding an EventMediator.

A group has one durable per partition (``<group>_p<n>``), each with at most one message unacked: every
replica of the group fetches from every partition, so the group's work spreads over its replicas while
each partition's events, hence each key's, are handled one after another across all of them.
"""

from __future__ import annotations

import asyncio
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
from cqrs.bus.handled import HandledRecord, bucket_name
from cqrs.events.event import Event
from cqrs.events.mediator import EventMediator
from cqrs.exceptions import CqrsConfigurationError

__all__ = ["BusConsumer", "ConsumerStats", "durable_name"]

logger = logging.getLogger("cqrs.bus")


@dataclasses.dataclass
class ConsumerStats:
    """What a :class:`BusConsumer` did with the messages it fetched (monotonic counters)."""

    handled: int = 0
    duplicates: int = 0  # an event some replica of the group handled already: acked, dropped
    unbound: int = 0  # an event type no handler here is bound to: acked, skipped
    failed: int = 0  # the mediator raised: nak'ed, redelivered after retry_delay
    undecodable: int = 0  # not an event this consumer can rebuild: terminated, never redelivered


def durable_name(group: str, partition: int) -> str:
    """The durable of one partition of a group: ``<group>_p<partition>``."""
    return f"{check_group(group)}_p{partition}"


class BusConsumer:
    """Runs one replica of subscriber group ``group``: fetches from each of its partition durables and
    sends each event to ``mediator``.

    - An event is acked after ``mediator.send`` returns, and the ack confirmed by JetStream; a failure
      naks it for redelivery (the mediator must use ``event_failure_policy="fail"``, or a failed handler
      would look handled).
    - A partition's events (so one key's) are handled one after another, in stream order, by whichever
      replica fetched each; partitions run concurrently: a replica holds at most one message of each.
    - A handled event's id is written to the group's KV bucket (kept ``dedup_ttl`` seconds) before the
      ack and looked up before handling: a redelivery reaching any replica is acked and dropped.
    - Messages held longer than ``ack_wait`` are kept from redelivery by in-progress signals.
    - A fetch waits at most ``fetch_wait`` seconds for messages (how late ``stop()`` may begin).
    - ``stop()`` stops fetching, lets the held messages finish (at most ``drain_timeout`` seconds, then
      cancels them: they are redelivered later) and closes the connection; no task is left behind.
    - A connection nats-py closes for good (after a server error) is replaced: the consumer starts
      again on a new one (what it held comes back after ``ack_wait``, at least once).
    """

    def __init__(
        self,
        mediator: EventMediator,
        *,
        group: str,
        url: str = "nats://127.0.0.1:4222",
        config: BusConfig | None = None,
        ack_wait: float = 30.0,
        dedup_window: int = 10_000,
        dedup_ttl: float = 600.0,
        retry_delay: float = 1.0,
        drain_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        fetch_wait: float = 0.5,
    ) -> None:
        if dedup_window < 1:
            raise ValueError("dedup_window must be >= 1")
        if dedup_ttl <= ack_wait:
            raise ValueError("dedup_ttl must be longer than ack_wait: a redelivery comes after ack_wait")
        if mediator.settings.event_failure_policy != "fail":
            raise ValueError(
                "BusConsumer acks an event once its handlers succeeded, so its mediator must raise when one "
                "fails: EventMediator(..., settings=MediatorSettings(event_failure_policy='fail'))"
            )
        self.mediator = mediator
        self.group = check_group(group)
        self.url = url
        self.config = config if config is not None else BusConfig()
        self.ack_wait = ack_wait
        self.retry_delay = retry_delay
        self.drain_timeout = drain_timeout
        self.connect_timeout = connect_timeout
        self.fetch_wait = fetch_wait
        self.stats = ConsumerStats()
        self._types = _event_types(mediator)
        self._handled = HandledRecord(
            bucket_name(self.config, self.group), ttl=dedup_ttl, window=dedup_window, timeout=ack_wait / 3
        )
        self._held: dict[int, Msg] = {}  # partition -> the message being handled
        self._stopping = False
        self._nc: Client | None = None
        self._fetchers: list[asyncio.Task[None]] = []
        self._keeper: asyncio.Task[None] | None = None
        self._restarting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect, create the stream, the group's durables and bucket if missing, and start consuming."""
        if self._nc is not None:
            return
        self._stopping = False
        nc = await _nats.connect(
            self.url, self.connect_timeout, buffer_while_reconnecting=True, on_closed=self._closed
        )
        try:
            js = nc.jetstream()
            await _nats.ensure_stream(js, self.config)
            await self._handled.open(js)
            subscriptions = [
                await js.pull_subscribe(
                    self.config.partition_filter(partition),
                    durable=durable_name(self.group, partition),
                    stream=self.config.stream,
                    config=ConsumerConfig(
                        deliver_policy=DeliverPolicy.ALL,
                        ack_policy=AckPolicy.EXPLICIT,
                        ack_wait=self.ack_wait,
                        max_deliver=-1,
                        max_ack_pending=1,  # the partition's order, across every replica
                    ),
                )
                for partition in range(self.config.partitions)
            ]
        except BaseException:
            await nc.close()
            raise
        self._nc = nc
        self._fetchers = [
            asyncio.create_task(self._run_partition(partition, sub), name=f"bus:{self.group}:p{partition}")
            for partition, sub in enumerate(subscriptions)
        ]
        self._keeper = asyncio.create_task(self._keep_alive(), name=f"bus:{self.group}:in-progress")

    async def stop(self) -> None:
        """Stop fetching, finish (or after ``drain_timeout`` cancel) held messages, close."""
        restarting, self._restarting = self._restarting, None
        try:
            if restarting is not None:
                restarting.cancel()
                await asyncio.gather(restarting, return_exceptions=True)
        finally:  # cut short too: what the restart left running is stopped
            await self._halt()

    async def _closed(self, nc: Client) -> None:
        if nc is self._nc:  # not one stop() let go first, nor a failed start
            self._start_again(f"connection closed ({nc.last_error})")

    def _start_again(self, why: str) -> None:
        """Start on a new connection (once at a time, never while stopping)."""
        if self._stopping or self._restarting is not None:
            return
        logger.error("bus group %s: %s, starting again", self.group, why)
        self._restarting = asyncio.create_task(self._restart(), name=f"bus:{self.group}:restart")

    async def _restart(self) -> None:
        """Stop what ran on the closed connection, then start on a new one. A held message comes
        back after ``ack_wait``; one whose handler finished meanwhile could not be recorded or acked
        on the closed connection, so it is handled again (at least once)."""
        try:
            await self._halt()
            await _nats.keep_trying(self.start, f"bus group {self.group}: starting again")
        finally:
            self._restarting = None

    async def _halt(self) -> None:
        fetchers, self._fetchers = self._fetchers, []
        keeper, self._keeper = self._keeper, None
        # no new fetch is asked for; a fetch under way returns within fetch_wait, so no message
        # arrives unseen, to wait out ack_wait before its redelivery
        self._stopping = True
        try:
            if fetchers:
                _, late = await asyncio.wait(fetchers, timeout=self.fetch_wait + self.drain_timeout)
                if late:
                    logger.warning(
                        "bus group %s: %d events cut short at stop (redelivered later)", self.group, len(late)
                    )
        finally:  # also when stop() itself is cancelled: nothing keeps running, start() works again
            tasks = fetchers if keeper is None else [*fetchers, keeper]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            nc, self._nc = self._nc, None
            if nc is not None and not nc.is_closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(nc.close(), self.drain_timeout)  # acks were sent already

    async def __aenter__(self) -> BusConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _run_partition(self, partition: int, subscription: JetStreamContext.PullSubscription) -> None:
        """Fetch one message of the partition at a time, handle it, settle it, fetch the next."""
        delay = 0.05
        while not self._stopping:
            try:
                messages = await subscription.fetch(1, timeout=self.fetch_wait)
            except nats.errors.TimeoutError:
                continue  # nothing new within the timeout (or another replica holds the partition)
            except (nats.errors.Error, OSError) as exc:  # NATS down or restarting: try again
                logger.debug("bus group %s: fetch failed (%r), retrying", self.group, exc)
                if delay >= 1.0 and await self._durable_gone(partition):
                    self._start_again("its durable is gone (the stream was deleted or NATS lost its store)")
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.05
            for msg in messages:
                self._held[partition] = msg
                try:
                    await self._handle(msg)
                except asyncio.CancelledError:  # cut short at stop: any replica may take it at once
                    await _settle(msg.nak())
                    raise
                finally:
                    self._held.pop(partition, None)

    async def _durable_gone(self, partition: int) -> bool:
        """True when JetStream answers that the partition's durable (or its stream) does not exist."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            return False
        try:
            js = nc.jetstream(timeout=self.fetch_wait)
            await js.consumer_info(self.config.stream, durable_name(self.group, partition))
        except nats.js.errors.NotFoundError:
            return True
        except (nats.errors.Error, OSError, TimeoutError):
            pass
        return False

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
        if await self._handled.seen(event_id):
            self.stats.duplicates += 1
            await self._ack(msg)
            return
        event_type = self._types.get(headers.get(EVENT_HEADER, ""))
        if event_type is None:
            self.stats.unbound += 1
            await self._ack(msg)
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
        try:
            await observe.consumed(self.group, msg, self.mediator.send(event))
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and _being_cancelled():
                raise  # stop(): the partition's loop naks it
            logger.exception(
                "bus group %s: handling %s %s failed", self.group, event_type.__qualname__, event_id
            )
            self.stats.failed += 1
            await _settle(msg.nak(delay=self.retry_delay))
            return
        await self._handled.record(event_id)  # before the ack: a redelivery anywhere finds it
        self.stats.handled += 1
        await self._ack(msg)

    async def _ack(self, msg: Msg) -> None:
        """Ack and wait for JetStream to confirm it, retrying for at most ``ack_wait``: the partition's
        next event comes only after this ack, so an ack lost in a NATS restart would hold it that long."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_wait
        while True:
            try:
                await msg.ack_sync(timeout=max(0.05, min(1.0, deadline - loop.time())))
                return
            except Exception as exc:
                closed = isinstance(exc, nats.errors.ConnectionClosedError)  # its connection is gone for good
                if closed or loop.time() >= deadline or self._nc is None or self._nc.is_closed:
                    logger.debug("bus group %s: ack not confirmed (%r); redelivered later", self.group, exc)
                    return
                await asyncio.sleep(0.05)

    async def _keep_alive(self) -> None:
        """Tell JetStream, every third of ``ack_wait``, that the held messages are still being handled."""
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            for msg in list(self._held.values()):
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


def _being_cancelled() -> bool:
    """Whether the running task itself is being cancelled (not a CancelledError a handler awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
