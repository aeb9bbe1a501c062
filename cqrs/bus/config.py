"""Where events go on the bus: one stream, subjects ``<prefix>.<partition>.<topic or event name>.<key>``.

A subject's last token is the event's ordering key and its partition token a hash of that key: a group
handles the events of one partition one after another, across all its replicas, so giving every event
about one file the same key keeps that file's events in order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from cqrs.message_brokers.protocol import Message

__all__ = ["BusConfig", "KeyOf", "field_key"]

KeyOf = Callable[[Message], "str | None"]
"""Picks a message's ordering key (``None``: the event name's shared subject, ``_``)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-=]")  # what may not stand in a subject token
_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")  # stream and durable names
_MAX_KEY = 128  # characters of a key token; a longer key is replaced by its SHA-256

EVENT_HEADER = "Cqrs-Event"
"""The header naming the event's class, so that a consumer rebuilds the right class."""
MSG_ID_HEADER = "Nats-Msg-Id"


def field_key(*names: str) -> KeyOf:
    """The value of the first of ``names`` found in the event's ``payload``, else in the event itself."""

    def key_of(message: Message) -> str | None:
        data: Any = message.payload
        places = [data.get("payload"), data] if isinstance(data, Mapping) else []
        for place in places:
            if isinstance(place, Mapping):
                for name in names:
                    value = place.get(name)
                    if value is not None:
                        return str(value)
        return None

    return key_of


@dataclasses.dataclass(frozen=True, kw_only=True)
class BusConfig:
    """The stream publishers and consumers share; both sides must be given equal ones.

    ``duplicate_window`` is JetStream's publish-side de-duplication by ``Nats-Msg-Id`` (the event id),
    in seconds; ``max_age`` (seconds, 0: forever) bounds how long events stay in the stream.
    ``partitions`` is how many ordering lanes a group has (the most events a group handles at once);
    fixed for a stream's life: a key's partition is part of its stored subjects.
    """

    stream: str = "CQRS_EVENTS"
    prefix: str = "cqrs.events"
    duplicate_window: float = 120.0
    max_age: float = 0.0
    partitions: int = 16

    def __post_init__(self) -> None:
        if not _NAME.match(self.stream):
            raise ValueError(f"stream={self.stream!r}: use letters, digits, '_' and '-' only")
        if not self.prefix or any(not _NAME.match(token) for token in self.prefix.split(".")):
            raise ValueError(f"prefix={self.prefix!r}: use dot-separated tokens of letters, digits, '_', '-'")
        if not 1 <= self.partitions <= 1024:
            raise ValueError(f"partitions={self.partitions}: use 1 to 1024")

    @property
    def subjects(self) -> str:
        """The stream's subject filter: everything under the prefix."""
        return f"{self.prefix}.>"

    def subject(self, message: Message, key: str | None) -> str:
        """``<prefix>.<partition>.<topic or event name>.<key>``: unsafe characters become ``_`` (a
        collision only merges two keys' ordering), a key over 128 characters becomes its SHA-256; a
        topic may have dots of its own (more tokens)."""
        payload = message.payload if isinstance(message.payload, Mapping) else {}
        name = message.topic or payload.get("event_name") or message.message_name
        token = _key_token(key) if key else "_"
        return f"{self.prefix}.{self.partition(token)}.{_route(str(name))}.{token}"

    def partition(self, key_token: str) -> int:
        """The partition of a subject's key token: a hash every process computes alike, mod ``partitions``."""
        return zlib.crc32(key_token.encode()) % self.partitions

    def partition_filter(self, partition: int) -> str:
        """The subject filter of one partition's events, whatever their topic and key."""
        return f"{self.prefix}.{partition}.>"

    def topic_filter(self, topic: str) -> str:
        """The subject filter that matches every event published under ``topic`` (or that event
        name), whatever its key and partition: what a reader of one kind of event subscribes to."""
        return f"{self.prefix}.*.{_route(topic)}.*"


def _route(name: str) -> str:
    return ".".join(_token(part) for part in name.split(".") if part) or "_"


def _key_token(key: str) -> str:
    """A key as one subject token; a long one (a deep path) by its hash, so a subject stays far below
    nats-server's limit on a protocol line."""
    token = _token(key)
    return token if len(token) <= _MAX_KEY else hashlib.sha256(key.encode()).hexdigest()


def _token(text: str) -> str:
    return _UNSAFE.sub("_", text) or "_"


def check_group(group: str) -> str:
    """A subscriber group's name is its durable's name: letters, digits, ``_`` and ``-``."""
    if not _NAME.match(group):
        raise ValueError(f"group={group!r}: a durable name takes letters, digits, '_' and '-' only")
    return group
