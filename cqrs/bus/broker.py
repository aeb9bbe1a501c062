"""The publishing side: a :class:`~cqrs.message_brokers.MessageBroker` that stores each message in
JetStream and returns only once JetStream has acknowledged it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from cqrs import observe
from cqrs.bus import _nats
from cqrs.bus.config import EVENT_HEADER, MSG_ID_HEADER, BusConfig, KeyOf, field_key
from cqrs.errors import UnavailableError
from cqrs.message_brokers.protocol import Message, MessageBroker

__all__ = ["JetStreamBroker"]

logger = logging.getLogger("cqrs.bus")


class JetStreamBroker(MessageBroker):
    """Publishes each message to ``<prefix>.<topic or event name>.<key>`` with ``Nats-Msg-Id`` = the
    event id, and returns once JetStream has stored it.

    While NATS is unreachable, ``send_message`` retries for at most ``publish_timeout`` seconds, then
    raises :class:`~cqrs.UnavailableError` (a gRPC server answers UNAVAILABLE): an event is stored or
    the send fails, never dropped. A retry after an unanswered attempt reuses the id, so JetStream
    stores the event once. A connection nats-py closes for good (after a server error) is replaced in
    the background. ``key`` picks the ordering key (default: a ``key`` field of the payload).
    """

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        config: BusConfig | None = None,
        publish_timeout: float = 5.0,
        ack_timeout: float = 2.0,
        key: KeyOf | None = None,
    ) -> None:
        self.url = url
        self.config = config if config is not None else BusConfig()
        self.publish_timeout = publish_timeout
        self.ack_timeout = ack_timeout
        self.key = key if key is not None else field_key("key")
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._starting = asyncio.Lock()
        self._reopening: asyncio.Task[None] | None = None
        self._closes = 0  # close() counts: a start under way when it ran gives its connection up
        self._listeners: list[Callable[[bool], None]] = []

    @property
    def connected(self) -> bool:
        """True while the connection to NATS is up (False before ``start``, while reconnecting, after
        ``close``)."""
        return self._nc is not None and self._nc.is_connected

    def on_connection_change(self, listener: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``listener(connected)`` when the connection is lost (False) and when it is back (True);
        returns a function that stops calling it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def _disconnected(self, nc: Client) -> None:
        if nc is self._nc:
            self._tell(False)

    async def _reconnected(self, nc: Client) -> None:
        if nc is self._nc:
            self._tell(True)

    async def _closed(self, nc: Client) -> None:
        if nc is not self._nc or self._reopening is not None:
            return  # close() (which let it go first), a failed attempt, or being replaced already
        logger.error("event bus %s: connection closed (%s), opening a new one", self.url, nc.last_error)
        self._reopening = asyncio.create_task(self._reopen(), name="bus:broker:reopen")

    async def _reopen(self) -> None:
        try:
            await _nats.keep_trying(self.start, f"reconnecting to the event bus at {self.url}")
        finally:
            self._reopening = None

    def _tell(self, connected: bool) -> None:
        if connected:
            logger.info("event bus %s: reconnected", self.url)
        else:
            logger.warning("event bus %s: disconnected, reconnecting", self.url)
        for listener in list(self._listeners):
            try:
                listener(connected)
            except Exception:
                logger.exception("event bus connection listener %r failed", listener)

    async def start(self, within: float | None = None) -> None:
        """Connect and create the stream if missing, within ``within`` seconds (default
        ``publish_timeout``), waiting for a concurrent start included, or raise
        :class:`~cqrs.UnavailableError`; ``send_message`` does this itself when needed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.publish_timeout if within is None else within)
        closes = self._closes
        async with _nats.starting(self._starting, self.url, deadline):
            replacing = self._nc
            if replacing is not None and not replacing.is_closed:
                return
            nc = await _nats.connect(
                self.url,
                deadline - loop.time(),
                buffer_while_reconnecting=False,
                on_disconnected=self._disconnected,
                on_reconnected=self._reconnected,
                on_closed=self._closed,
            )
            js = await _nats.with_stream(
                nc,
                self.config,
                deadline=deadline,
                request_timeout=self.ack_timeout,
                wanted=lambda: closes == self._closes,
            )
            self._nc, self._js = nc, js
            if replacing is not None:
                self._tell(True)

    async def close(self) -> None:
        """Close the connection (nothing is buffered: each send has been acknowledged or has failed)."""
        nc, self._nc, self._js = self._nc, None, None
        self._closes += 1
        reopening, self._reopening = self._reopening, None
        if reopening is not None:
            reopening.cancel()
            await asyncio.gather(reopening, return_exceptions=True)
        if nc is not None and not nc.is_closed:
            await nc.close()

    async def __aenter__(self) -> JetStreamBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def send_message(self, message: Message) -> None:
        """Store ``message`` in the stream, or raise :class:`~cqrs.UnavailableError` after
        ``publish_timeout`` seconds of trying."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        if self._nc is None or self._nc.is_closed:
            try:
                await self.start(deadline - loop.time())
            except UnavailableError as exc:
                logger.warning("event bus %s: %s not stored (%s)", self.url, message.message_id, exc)
                raise _nats.unavailable("the event bus did not store the event in time") from exc
        subject = self.config.subject(message, self.key(message))
        headers = {MSG_ID_HEADER: str(message.message_id), EVENT_HEADER: message.message_name}
        data = _nats.encode(message.payload)
        storing = self._store(message, subject, data, headers, deadline)
        watching = observe.observer
        if watching is None:
            await storing
        else:  # the observer adds its headers (trace context) before the first attempt runs
            await watching.publish(message.message_name, headers, storing)

    async def _store(
        self,
        message: Message,
        subject: str,
        data: bytes,
        headers: dict[str, str],
        deadline: float,
    ) -> None:
        """Publish until JetStream acknowledges, retrying what says nothing about the message."""
        loop = asyncio.get_running_loop()
        delay = 0.05
        while True:
            remaining = deadline - loop.time()
            failure: Exception
            try:
                js = self._js
                if js is None or not self.connected:  # nats-py would keep a reply future per refused attempt
                    raise nats.errors.ConnectionReconnectingError
                ack = await js.publish(
                    subject, data, timeout=max(0.05, min(self.ack_timeout, remaining)), headers=headers
                )
            except nats.js.errors.NoStreamResponseError as exc:
                # no stream took it: JetStream is starting, or the stream is gone (a NATS with a new store)
                failure = exc
                await self._recreate_stream(js, remaining)
            except _nats.RETRYABLE as exc:
                failure = exc
            else:
                if ack.duplicate:
                    logger.debug("event %s was stored already (seq %s)", message.message_id, ack.seq)
                return
            if loop.time() + delay >= deadline:
                logger.warning(
                    "event bus %s: %s %s not stored within %g s (%r)",
                    self.url,
                    message.message_name,
                    message.message_id,
                    self.publish_timeout,
                    failure,
                )
                raise _nats.unavailable("the event bus did not store the event in time") from failure
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _recreate_stream(self, js: JetStreamContext | None, within: float) -> None:
        """Create the stream again if it is missing (a failure is left to the caller's retry)."""
        if js is None:
            return
        try:
            async with asyncio.timeout(max(0.05, min(self.ack_timeout, within))):
                created = await _nats.ensure_stream(js, self.config)
        except (TimeoutError, nats.errors.Error) as exc:
            logger.debug("event bus %s: stream %s not checked (%r)", self.url, self.config.stream, exc)
            return
        if created:
            logger.warning("event bus %s: stream %s was missing, created again", self.url, self.config.stream)
