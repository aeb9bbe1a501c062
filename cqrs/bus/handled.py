"""A subscriber group's record of the events it handled, shared by its replicas: a JetStream KV bucket.

An id is written after the event's handlers returned and before its ack, and read before handling: a
redelivery that reaches any replica of the group within ``ttl`` seconds is dropped there. The last ids
this process handled are also kept in memory, so a redelivery to the same replica costs no round trip.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from cqrs.bus.config import BusConfig

__all__ = ["HandledRecord", "bucket_name"]

logger = logging.getLogger("cqrs.bus")

_KEY = re.compile(r"^[A-Za-z0-9_\-=]{1,128}$")  # what a KV key may be as it is (no dots: one token)


def bucket_name(config: BusConfig, group: str) -> str:
    """The group's bucket: ``<stream>_<group>_handled`` (one per stream and group)."""
    return f"{config.stream}_{group}_handled"


class HandledRecord:
    """Which event ids a group has handled in the last ``ttl`` seconds, in KV and (``window`` ids) here.

    ``seen`` and ``record`` never raise: with NATS unreachable, ``seen`` answers from memory only and
    ``record`` gives up after ``timeout`` seconds (the event's ack cannot be sent either; a redelivery
    to another replica is then handled again, as after a crash).
    """

    def __init__(self, bucket: str, *, ttl: float, window: int, timeout: float) -> None:
        self.bucket = bucket
        self.ttl = ttl
        self.timeout = timeout
        self._window = window
        self._recent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._kv: KeyValue | None = None

    async def open(self, js: JetStreamContext) -> None:
        """Use the group's bucket, creating it (file storage, one value per key, ``ttl``) if missing;
        an existing bucket keeps its own TTL."""
        try:
            self._kv = await js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            self._kv = await js.create_key_value(
                KeyValueConfig(bucket=self.bucket, ttl=self.ttl, history=1, storage=StorageType.FILE)
            )

    async def seen(self, event_id: str) -> bool:
        """True if a replica of the group recorded ``event_id`` (an empty id is never seen)."""
        if not event_id:
            return False
        if event_id in self._recent:
            return True
        if self._kv is None:
            return False
        kv = self._kv
        try:
            await self._retrying(lambda: kv.get(_key(event_id)))
        except nats.js.errors.KeyNotFoundError:
            return False
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            logger.warning("bus %s: cannot read the handled record (%r): handling", self.bucket, exc)
            return False
        self._remember(event_id)
        return True

    async def record(self, event_id: str) -> None:
        """Note ``event_id`` as handled, for this process and (within ``timeout``) for the group."""
        if not event_id:
            return
        self._remember(event_id)
        if self._kv is None:
            return
        kv = self._kv
        try:
            await self._retrying(lambda: kv.put(_key(event_id), b"1"))
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            logger.warning("bus %s: event %s not recorded (%r)", self.bucket, event_id, exc)

    async def _retrying(self, call: Callable[[], Awaitable[object]]) -> None:
        """Run ``call`` in attempts of at most a second (a request lost in a NATS restart is asked
        again, not waited for), for at most ``timeout`` seconds; a missing key is an answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            try:
                async with asyncio.timeout(max(0.05, min(1.0, deadline - loop.time()))):
                    await call()
                return
            except (nats.js.errors.KeyNotFoundError, nats.errors.ConnectionClosedError):
                raise  # an answer, or a connection that will not come back (the consumer starts again)
            except (TimeoutError, nats.errors.Error, OSError):
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.05)

    def _remember(self, event_id: str) -> None:
        self._recent[event_id] = None
        if len(self._recent) > self._window:
            self._recent.popitem(last=False)


def _key(event_id: str) -> str:
    """The KV key of an id: the id itself when it is a plain token, else its SHA-256."""
    if _KEY.match(event_id):
        return event_id
    return hashlib.sha256(event_id.encode()).hexdigest()
