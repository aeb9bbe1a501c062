"""Message brokers: where a mediator's :class:`~cqrs.NotificationEvent` s leave the process."""

from cqrs.message_brokers.protocol import Message, MessageBroker

__all__ = ["Message", "MessageBroker"]
