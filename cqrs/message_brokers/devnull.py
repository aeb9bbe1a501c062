"""A broker that keeps every message in :data:`MESSAGE_BUS` and sends nothing (tests, defaults)."""

from __future__ import annotations

import logging

from cqrs.message_brokers.protocol import Message, MessageBroker

__all__ = ["MESSAGE_BUS", "DevnullMessageBroker"]

logger = logging.getLogger("cqrs")

MESSAGE_BUS: list[Message] = []
"""Every message any :class:`DevnullMessageBroker` was given, oldest first (never trimmed)."""


class DevnullMessageBroker(MessageBroker):
    """Appends each message to :data:`MESSAGE_BUS`; nothing leaves the process."""

    async def send_message(self, message: Message) -> None:
        MESSAGE_BUS.append(message)
        logger.debug("devnull broker keeps message %s (%s)", message.message_id, message.message_name)
