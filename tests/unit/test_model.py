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


class Shapes(cqrs.Response):
    at: datetime.datetime
    ids: tuple[uuid.UUID, ...]
    by_day: dict[str, datetime.date]
    seen: set[str] = dataclasses.field(default_factory=set)
    either: int | str = 0
    inner: Inner | None = None


def test_from_dict_reads_json_shaped_data_and_leaves_odd_shapes_alone() -> None:
    """What a bus reader hands over: ISO text for dates, UUIDs as text, lists for tuples and sets;
    a value whose shape does not match its hint is handed to the class as is, None stays None."""
    when = datetime.datetime(2026, 12, 5, 5, 0, tzinfo=datetime.UTC)
    ident = uuid.uuid4()
    data = {
        "at": when.isoformat(),
        "ids": [str(ident)],
        "by_day": {"a": "2026-12-05"},
        "seen": ["x", "x"],
        "either": "text",
        "inner": None,
    }
    shapes = Shapes.from_dict(data)
    assert shapes == Shapes(
        at=when, ids=(ident,), by_day={"a": datetime.date(2026, 12, 5)}, seen={"x"}, either="text"
    )
    assert data["by_day"] == {"a": "2026-12-05"}  # the input is not changed
    odd = Shapes.from_dict({"at": when, "ids": [], "by_day": {}, "inner": "not a mapping"})
    assert odd.at is when and odd.inner == "not a mapping"
    assert Child.from_dict({"name": "n", "points": [{"x": 1, "y": 2, "z": 3}], "color": None}) == Child(
        name="n", points=[Point(1, 2)]
    )


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
