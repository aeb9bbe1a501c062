"""The event bus as a dependency of the server: connected at start, closed at stop.

An App given a ``broker`` (a :class:`cqrs.bus.JetStreamBroker`, the one its mediator publishes
through) connects it to ``settings.nats_url`` before serving: an unreachable bus stops the start.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

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
