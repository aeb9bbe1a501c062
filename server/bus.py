"""The event bus as a dependency of the server: connected at start, in health, closed at stop.

An App given a ``broker`` (a :class:`cqrs.bus.JetStreamBroker`, the one its mediator publishes
through) connects it to ``settings.nats_url`` before serving: an unreachable bus stops the start.
While the connection is down every health status is NOT_SERVING, and Watch streams are told at
once in both directions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from server.health import OVERALL, Health

if TYPE_CHECKING:
    from cqrs.bus import JetStreamBroker

logger = logging.getLogger("server")


async def connect(broker: JetStreamBroker, nats_url: str | None) -> None:
    """Point ``broker`` at ``nats_url`` (if given) and connect it, within its ``publish_timeout``;
    :class:`cqrs.UnavailableError` if the bus cannot be reached."""
    if nats_url is not None:
        broker.url = nats_url
    await broker.start()
    logger.info("event bus connected url=%s", broker.url)


def watch_health(broker: JetStreamBroker, health: Health) -> Callable[[], None]:
    """Make the broker's connection a check of the whole server (it gates every service), and push
    each change to Watch streams rather than waiting for their next poll; returns the function that
    stops the pushing (for the server's stop)."""

    async def connected() -> bool:
        return broker.connected

    health.add_check(OVERALL, connected)
    return broker.on_connection_change(lambda _connected: health.recheck())
