"""The broker protocol (python-cqrs's shape): ``async send_message(message)`` with a :class:`Message`.

A broker plugs into :class:`~cqrs.events.EventEmitter`, which turns each notification event into one
message; a bus such as NATS JetStream implements :class:`MessageBroker` and nothing else.
"""

from __future__ import annotations

import abc
import dataclasses
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cqrs.events.event import NotificationEvent

__all__ = ["Message", "MessageBroker", "message_of"]


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


def message_of(event: NotificationEvent[Any]) -> Message:
    """The broker message for ``event``: its class name, topic, id and JSON-shaped payload."""
    return Message(
        message_name=type(event).__name__,
        topic=event.topic,
        payload=_payload(event),
        message_id=event.event_id,
    )


def _payload(event: NotificationEvent[Any]) -> Any:
    data = event.to_dict()
    dump = getattr(event.payload, "model_dump", None)  # a pydantic payload, as python-cqrs examples use
    if callable(dump):
        data["payload"] = dump(mode="json")
    return data
