"""python-cqrs model shapes: the frozen= class keyword and pydantic-declared fields (issue 17)."""

from __future__ import annotations

import dataclasses
import uuid

import pydantic
import pytest

import cqrs


def test_frozen_keyword_on_a_domain_event_is_accepted() -> None:
    class Joined(cqrs.DomainEvent, frozen=True):
        user_id: str

    event = Joined(user_id="1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.user_id = "2"  # type: ignore[misc]
    assert hash(event) == hash(Joined(user_id="1"))


def test_frozen_keyword_freezes_a_request() -> None:
    class Command(cqrs.Request, frozen=True):
        value: int

    with pytest.raises(dataclasses.FrozenInstanceError):
        Command(value=1).value = 2  # type: ignore[misc]


def test_frozen_false_on_a_frozen_family_says_why() -> None:
    with pytest.raises(TypeError, match="frozen family"):

        class Loose(cqrs.DomainEvent, frozen=False):
            value: int


def test_a_pydantic_field_default_is_the_default_not_a_field_info() -> None:
    class Query(cqrs.Request):
        room: uuid.UUID = pydantic.Field()
        status: str | None = pydantic.Field(default=None)
        tags: list[str] = pydantic.Field(default_factory=list)

    room = uuid.uuid4()
    query = Query(room=room)
    assert query.status is None and query.tags == []
    assert [f.name for f in dataclasses.fields(query)] == ["room", "status", "tags"]
    with pytest.raises(pydantic.ValidationError):
        Query()  # type: ignore[call-arg]  # a Field() without default is required


def test_a_pydantic_built_model_validates_like_python_cqrs() -> None:
    class Result(cqrs.Response):
        room: uuid.UUID = pydantic.Field()

    room = uuid.uuid4()
    assert Result(room=str(room)).room == room  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError):
        Result(room="not a uuid")  # type: ignore[arg-type]


def test_aliased_fields_work_by_alias_and_by_name() -> None:
    class Fan(cqrs.DomainEvent, frozen=True):
        id_: str = pydantic.Field(alias="id")
        model_config = pydantic.ConfigDict(populate_by_name=True)

    assert Fan(id="a").id_ == "a"  # type: ignore[call-arg]
    assert Fan(id_="b").id_ == "b"
    assert Fan(id="a") == Fan(id_="a")  # type: ignore[call-arg]


def test_a_subclass_of_a_pydantic_built_model_is_pydantic_built_too() -> None:
    class Base(cqrs.Request):
        a: int = pydantic.Field(default=1)

    class Child(Base):
        b: int = 2

    assert Child(b="3").b == 3  # type: ignore[arg-type]  # validated (coerced), as pydantic does


def test_plain_models_stay_plain_dataclasses() -> None:
    class Plain(cqrs.Request):
        value: int

    assert Plain(value="x").value == "x"  # type: ignore[arg-type]  # no validation, no pydantic
    assert not hasattr(Plain, "__pydantic_fields__")


def test_pydantic_bases_are_always_pydantic_built() -> None:
    from cqrs.models import DCRequest

    class Query(cqrs.PydanticRequest):
        limit: int

    class Seen(cqrs.PydanticDomainEvent):
        count: int

    assert Query(limit="5").limit == 5  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError):
        Query(limit="many")  # type: ignore[arg-type]
    assert isinstance(Seen(count=1), cqrs.DomainEvent) and hash(Seen(count=1)) == hash(Seen(count=1))
    assert DCRequest is cqrs.Request
