"""The bus's choices that need no server: subjects and keys, names, the JSON round trip of an event."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import pytest

import cqrs
from cqrs.bus import BusConfig, field_key
from cqrs.bus._nats import encode
from cqrs.bus.config import check_group
from cqrs.message_brokers.protocol import message_of as _message


class FileChanged(cqrs.NotificationEvent[dict[str, Any]]):
    pass


def _event(**payload: Any) -> FileChanged:
    return FileChanged(event_name="file_changed", payload=payload)


def test_the_subject_is_prefix_partition_event_name_and_key() -> None:
    message = _message(_event(file_id="f_1"))
    config = BusConfig()
    partition = config.partition("f_1")
    assert (
        config.subject(message, field_key("file_id")(message)) == f"cqrs.events.{partition}.file_changed.f_1"
    )
    assert BusConfig(partitions=1).subject(message, "f_1") == "cqrs.events.0.file_changed.f_1"


def test_a_keys_partition_is_a_stable_hash_and_keys_spread_over_the_partitions() -> None:
    config = BusConfig(partitions=8)
    assert config.partition("f_1") == 1 and config.partition("f_2") == 3  # crc32: alike in every process
    assert len({config.partition(f"f{i}") for i in range(100)}) == 8
    assert config.partition_filter(3) == "cqrs.events.3.>"
    with pytest.raises(ValueError, match="partitions"):
        BusConfig(partitions=0)


def test_the_topic_replaces_the_event_name_and_may_have_tokens_of_its_own() -> None:
    message = _message(FileChanged(event_name="file_changed", topic="files.v1", payload={"file_id": "a"}))
    config = BusConfig(prefix="app", partitions=1)
    assert config.subject(message, "a") == "app.0.files.v1.a"


def test_a_topic_filter_matches_the_subjects_of_every_key_of_that_topic_only() -> None:
    config = BusConfig(prefix="app")
    assert config.topic_filter("files.v1") == "app.*.files.v1.*"
    assert config.topic_filter("file changed") == "app.*.file_changed.*"
    for key in ("f_1", "f_2", "f_3"):
        subject = config.subject(_message(_event(file_id=key)), key).split(".")
        pattern = config.topic_filter("file_changed").split(".")
        assert len(subject) == len(pattern)
        assert all(want in ("*", token) for want, token in zip(pattern, subject, strict=True))
    other = config.subject(_message(FileChanged(event_name="x", topic="file_changed.v2")), "f_1")
    assert len(other.split(".")) != len(config.topic_filter("file_changed").split("."))


def test_without_a_key_events_share_their_names_subject() -> None:
    message = _message(_event(other=1))
    assert field_key("file_id")(message) is None
    assert BusConfig(partitions=1).subject(message, None) == "cqrs.events.0.file_changed._"


def test_unsafe_characters_in_a_key_become_underscores() -> None:
    message = _message(_event())
    assert BusConfig(partitions=1).subject(message, "a.b c*>") == "cqrs.events.0.file_changed.a_b_c__"


def test_field_key_falls_back_from_the_payload_to_the_events_own_fields() -> None:
    message = _message(_event(n=1))
    assert field_key("file_id", "event_name")(message) == "file_changed"


@pytest.mark.parametrize(
    "kwargs", [{"stream": "a.b"}, {"prefix": "a.>"}, {"prefix": ""}, {"stream": "has space"}]
)
def test_bad_stream_names_and_prefixes_are_refused(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        BusConfig(**kwargs)


def test_a_group_name_must_be_a_durable_name() -> None:
    assert check_group("audit-log_1") == "audit-log_1"
    with pytest.raises(ValueError, match="durable"):
        check_group("audit.log")


def test_an_event_survives_the_json_round_trip() -> None:
    class Stamped(cqrs.NotificationEvent[dict[str, Any]]):
        seen_at: datetime.datetime
        ref: uuid.UUID

    event = Stamped(
        event_name="s", payload={"a": [1, 2]}, seen_at=datetime.datetime.now(datetime.UTC), ref=uuid.uuid4()
    )
    assert Stamped.from_dict(json.loads(encode(event.to_dict()))) == event
