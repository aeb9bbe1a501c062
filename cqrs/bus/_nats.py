"""What the publisher and the consumer share: connecting within a bound, the stream, the wire format."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import enum
import functools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from cqrs.bus.config import BusConfig
from cqrs.errors import UnavailableError

logger = logging.getLogger("cqrs.bus")

RETRYABLE = (
    asyncio.TimeoutError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.UnexpectedEOF,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
)
"""Failures that say nothing about the request itself: the bus is down, restarting or slow."""


def unavailable(message: str) -> UnavailableError:
    """What a caller is told when the bus fails it: no address, no exception name (those are logged)."""
    return UnavailableError(message, reason="EVENT_BUS_UNAVAILABLE")


Callback = Callable[[Client], Awaitable[None]]
"""A connection event's callback, given the client it happened to."""


async def connect(
    url: str,
    timeout: float,
    *,
    buffer_while_reconnecting: bool,
    on_disconnected: Callback | None = None,
    on_reconnected: Callback | None = None,
    on_closed: Callback | None = None,
) -> Client:
    """Connect, retrying until ``timeout`` seconds have passed, then raise :class:`~cqrs.UnavailableError`.

    Once connected the client reconnects forever. Without ``buffer_while_reconnecting`` a publish
    while disconnected fails at once (and is retried by the caller) instead of being sent later,
    perhaps after the caller was told it failed. ``on_disconnected(client)`` / ``on_reconnected(client)``
    are awaited when the connection is lost and when it is back, ``on_closed(client)`` once it is closed:
    by its owner, for good by nats-py itself after most server errors (see :func:`keep_trying`), or as an
    attempt that failed; each names its client, so a caller can ignore those it no longer uses."""

    async def report(exc: Exception) -> None:
        logger.debug("nats %s: %s", url, exc)

    # nats-py annotates its durations as int; it takes fractions of seconds
    options: dict[str, Any] = {
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.25,
        "pending_size": 2 * 1024 * 1024 if buffer_while_reconnecting else 0,
        "error_cb": report,
    }
    callbacks = {"disconnected_cb": on_disconnected, "reconnected_cb": on_reconnected, "closed_cb": on_closed}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.05
    while True:
        nc = Client()
        for name, callback in callbacks.items():
            if callback is not None:
                options[name] = functools.partial(callback, nc)
        try:
            # bounded from outside: with reconnects unlimited, a first connect could retry forever
            async with asyncio.timeout(max(0.1, deadline - loop.time())):
                options["connect_timeout"] = max(0.1, min(2.0, deadline - loop.time()))
                await nc.connect(url, **options)
            return nc
        except BaseException as exc:  # cancelled too: no half-open client is left behind
            with contextlib.suppress(Exception):
                await nc.close()
            if not isinstance(exc, TimeoutError | OSError | nats.errors.Error):
                raise
            if loop.time() + delay >= deadline:
                raise UnavailableError(
                    f"the event bus at {url} cannot be reached ({str(exc) or type(exc).__name__})",
                    reason="EVENT_BUS_UNAVAILABLE",
                ) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def with_stream(
    nc: Client,
    config: BusConfig,
    *,
    deadline: float,
    request_timeout: float,
    wanted: Callable[[], bool],
) -> JetStreamContext:
    """``nc``'s JetStream context once the stream exists (see :func:`ensure_stream`), by ``deadline``
    (loop time). Else ``nc`` is closed and :class:`~cqrs.UnavailableError` raised; also when its owner
    no longer ``wanted()`` it (it was closed meanwhile)."""
    url = nc.connected_url.geturl() if nc.connected_url is not None else "?"
    js = nc.jetstream(timeout=request_timeout)
    try:
        async with asyncio.timeout_at(deadline):
            await ensure_stream(js, config)
        if not wanted():
            raise UnavailableError(
                f"the event bus at {url} was closed while connecting", reason="EVENT_BUS_UNAVAILABLE"
            )
    except BaseException as exc:
        await nc.close()
        if isinstance(exc, RETRYABLE):  # connected, but JetStream is not answering (yet)
            raise UnavailableError(
                f"the event bus at {url} has no JetStream answering ({type(exc).__name__})",
                reason="EVENT_BUS_UNAVAILABLE",
            ) from exc
        raise
    return js


async def keep_trying(attempt: Callable[[], Awaitable[None]], what: str, pause: float = 1.0) -> None:
    """Await ``attempt()`` until it returns, ``pause`` seconds after each failure (logged); cancel to
    give up. What opens a new connection after nats-py closed one for good."""
    while True:
        try:
            await attempt()
            return
        except Exception as exc:
            logger.warning("%s failed (%s), trying again in %g s", what, exc, pause)
        await asyncio.sleep(pause)


@contextlib.asynccontextmanager
async def starting(lock: asyncio.Lock, url: str, deadline: float) -> AsyncIterator[None]:
    """Hold ``lock``, one connection attempt at a time, waiting for it until ``deadline`` (loop time)
    at most, then raise :class:`~cqrs.UnavailableError`: callers queued behind a failing attempt keep
    their own bound."""
    try:
        async with asyncio.timeout_at(deadline):
            await lock.acquire()
    except TimeoutError:
        raise UnavailableError(
            f"the event bus at {url} cannot be reached (another attempt to connect is still running)",
            reason="EVENT_BUS_UNAVAILABLE",
        ) from None
    try:
        yield
    finally:
        lock.release()


async def ensure_stream(js: JetStreamContext, config: BusConfig) -> bool:
    """Create the stream if it does not exist (file storage, de-duplication window): True if it did;
    an existing one is used as it is."""
    try:
        await js.stream_info(config.stream)
        return False
    except nats.js.errors.NotFoundError:
        pass
    await js.add_stream(
        StreamConfig(
            name=config.stream,
            subjects=[config.subjects],
            storage=StorageType.FILE,
            duplicate_window=config.duplicate_window,
            max_age=config.max_age or None,
        )
    )
    return True


def encode(payload: Any) -> bytes:
    """An event's ``to_dict()`` as JSON: UUIDs and decimals as strings, datetimes in ISO 8601."""
    return json.dumps(payload, default=_plain, separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return list(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"{type(value).__qualname__} cannot be written to the event bus as JSON")
