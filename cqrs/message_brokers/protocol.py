"""The broker protocol (python-cqrs's shape): ``async send_message(message)`` with a :class:`Message`.

A broker plugs into :class:`~cqrs.events.EventEmitter`, which turns each notification event into one
message; a bus such as NATS JetStream implements :class:`MessageBroker` and nothing else.
"""

from __future__ import annotations

import abc
import dataclasses
import uuid
from typing import Any

__all__ = ["Message", "MessageBroker"]


@dataclasses.dataclass
class Message:
    """One message for a broker: the event's class name, its topic and its ``to_dict()`` payload."""

    message_name: str
    topic: str | None
    payload: Any
    message_id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)

    def to_dict(self) -> dict[str, Any]:
        """The message as plain data (camelCase keys, as python-cqrs writes them)."""
        return {
            "messageName": self.message_name,
            "topic": self.topic,
            "payload": self.payload,
            "messageId": str(self.message_id),
        }


class MessageBroker(abc.ABC):
    """Sends messages somewhere outside the process."""

    @abc.abstractmethod
    async def send_message(self, message: Message) -> None:
        """Publish ``message``; raising reports the failure to the mediator's event failure policy."""
