"""The event bus: notification events published to NATS JetStream and consumed in any process.

:class:`JetStreamBroker` is a :class:`~cqrs.message_brokers.MessageBroker` (give it to a mediator as
``message_broker=``); :class:`BusConsumer` runs one subscriber group's durable consumer and hands each
event to a :class:`~cqrs.EventMediator`; :class:`BusReader` follows topics from a sequence (replay,
then live) for readers that each want every event. They need the ``bus`` extra (``nats-py``). The
choices are in docs/bus.md.
"""

from cqrs.bus.broker import JetStreamBroker
from cqrs.bus.config import BusConfig, field_key
from cqrs.bus.consumer import BusConsumer, ConsumerStats
from cqrs.bus.reader import BusReader, Follow
from cqrs.bus.server import NatsServer, find_nats_server

__all__ = [
    "BusConfig",
    "BusConsumer",
    "BusReader",
    "ConsumerStats",
    "Follow",
    "JetStreamBroker",
    "NatsServer",
    "field_key",
    "find_nats_server",
]
