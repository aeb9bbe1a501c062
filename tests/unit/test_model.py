"""Request/Response/Event classes are dataclasses without a decorator; to_dict/from_dict round-trip."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import typing
import uuid

import pytest

import cqrs


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Base(cqrs.Request):
    tenant: str = "t1"


class Child(Base):
    name: str
    points: list[Point]
    tags: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    color: Color | None = None


class Inner(cqrs.Response):
    value: int


class Outer(cqrs.Response):
    inner: Inner
    inners: list[Inner]
    maybe: Inner | None = None


def test_subclasses_are_keyword_only_dataclasses_with_inherited_defaults() -> None:
    child = Child(name="n", points=[Point(1, 2)])
    assert dataclasses.is_dataclass(Child)
    assert [f.name for f in dataclasses.fields(Child)] == ["tenant", "name", "points", "tags", "color"]
    assert child.tenant == "t1" and child.tags == {}
    with pytest.raises(TypeError):
        Child("t", "n", [])  # type: ignore[misc]
    assert typing.get_type_hints(Child)["points"] == list[Point]


def test_base_classes_stay_plain() -> None:
    assert not dataclasses.is_dataclass(cqrs.Request)
    assert not dataclasses.is_dataclass(cqrs.Event)


def test_to_dict_and_from_dict_round_trip_nested_values() -> None:
    child = Child(name="n", points=[Point(1, 2)], tags={"a": [1, 2]}, color=Color.RED)
    data = child.to_dict()
    assert data == {
        "tenant": "t1",
        "name": "n",
        "points": [{"x": 1, "y": 2}],
        "tags": {"a": [1, 2]},
        "color": Color.RED,
    }
    assert Child.from_dict(data) == child
    assert Child.from_dict({**data, "color": "red", "unknown": 1}) == child

    outer = Outer(inner=Inner(value=1), inners=[Inner(value=2)], maybe=Inner(value=3))
    assert Outer.from_dict(outer.to_dict()) == outer
    assert Outer.from_dict({"inner": {"value": 1}, "inners": []}).maybe is None


class Happened(cqrs.DomainEvent):
    what: str


def test_domain_events_are_frozen() -> None:
    event = Happened(what="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.what = "y"  # type: ignore[misc]
    assert hash(event) == hash(Happened(what="x"))


def test_notification_event_defaults() -> None:
    event: cqrs.NotificationEvent[dict[str, int]] = cqrs.NotificationEvent(
        event_name="done", payload={"n": 1}
    )
    assert isinstance(event.event_id, uuid.UUID)
    assert event.event_timestamp.tzinfo is datetime.UTC
    assert event.payload == {"n": 1}
    assert cqrs.NotificationEvent(event_name="x").payload is None
    assert event.event_id != cqrs.NotificationEvent(event_name="done").event_id


class Payload(cqrs.Response):
    n: int


class Typed(cqrs.NotificationEvent[Payload]):
    pass


def test_notification_event_subclass_with_typed_payload_round_trips() -> None:
    event = Typed(event_name="typed", payload=Payload(n=2))
    assert Typed.from_dict(event.to_dict()) == event
