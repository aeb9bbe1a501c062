"""server.codec start-up validation (check_fields, CodecError) and compile-once caching."""

import dataclasses
import enum
import importlib.util
import typing
from datetime import UTC, datetime

import pytest

from server import codec as codec_module
from server.codec import CodecError, check_fields, codec_for, compile_decoder, compile_encoder
from tests.protos.codec_models import Color, Everything, Point, SmallResult, Tree, pb

WHERE = "rpc codectest.v1.Test/Call request"


def problems(message: typing.Any, cls: type) -> list[str]:
    return check_fields(message.DESCRIPTOR, cls, where=WHERE)


def only(found: list[str]) -> str:
    assert len(found) == 1, found
    assert found[0].startswith(WHERE + ": ")
    return found[0]


def test_compatible_pairs_have_no_problems() -> None:
    assert problems(pb.Everything, Everything) == []
    assert problems(pb.Tree, Tree) == []  # recursive types terminate


def test_a_proto_field_missing_on_the_dataclass_names_both_and_suggests_the_annotation() -> None:
    @dataclasses.dataclass(kw_only=True)
    class NoLabel:
        x: int
        y: int

    text = only(problems(pb.Point, NoLabel))
    assert "proto field codectest.v1.Point.label (string)" in text
    assert "dataclass NoLabel" in text
    assert "add `label: str` to NoLabel" in text


def test_a_dataclass_field_without_default_missing_in_the_proto_is_a_problem() -> None:
    @dataclasses.dataclass(kw_only=True)
    class Extra:
        x: int
        y: int
        label: str
        z: int

    text = only(problems(pb.Point, Extra))
    assert "dataclass field Extra.z (int, no default)" in text
    assert "proto message codectest.v1.Point" in text
    assert "give Extra.z a default" in text


def test_a_dataclass_field_with_a_default_may_lack_a_proto_field() -> None:
    @dataclasses.dataclass(kw_only=True)
    class Extra:
        x: int
        y: int
        label: str
        computed: int = 0
        history: list[int] = dataclasses.field(default_factory=list)

    assert problems(pb.Point, Extra) == []
    codec = codec_for(pb.Point, Extra)
    assert codec.decode(codec.encode(Extra(x=1, y=2, label="l", computed=5))) == Extra(x=1, y=2, label="l")


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (int, "proto field codectest.v1.Point.label (string) does not fit dataclass field Bad.label (int)"),
        (list[str], "the annotation is a list and the field is not repeated"),
        (str | None, "the proto field has no presence"),
        (bytes, "annotate Bad.label as `str`"),
    ],
)
def test_a_scalar_type_mismatch_names_both_sides_and_the_fix(annotation: typing.Any, expected: str) -> None:
    Bad = dataclasses.make_dataclass("Bad", [("x", int), ("y", int), ("label", annotation)], kw_only=True)
    assert expected in only(problems(pb.Point, Bad))


@pytest.mark.parametrize(
    ("field", "annotation", "expected"),
    [
        (
            "tags",
            str,
            "proto field codectest.v1.Everything.tags (repeated string) does not fit dataclass field "
            "Bad.tags (str): the field is repeated and the annotation is not a list; "
            "annotate Bad.tags as `list[str]`",
        ),
        (
            "counts",
            list[int],
            "Everything.counts (map<string, int64>) does not fit dataclass field Bad.counts (list[int]): "
            "the field is a map and the annotation is not a dict; annotate Bad.counts as `dict[str, int]`",
        ),
        (
            "origin",
            dict[str, int],
            "Everything.origin (codectest.v1.Point) does not fit dataclass field Bad.origin "
            "(dict[str, int]): message codectest.v1.Point maps to a dataclass, and dict[str, int] is not one",
        ),
        (
            "created_at",
            str,
            "Everything.created_at (google.protobuf.Timestamp) does not fit dataclass field "
            "Bad.created_at (str): a Timestamp maps to datetime; annotate Bad.created_at as `datetime`",
        ),
        ("elapsed", int, "a Duration maps to timedelta; annotate Bad.elapsed as `timedelta`"),
        ("nick", bytes | None, "a StringValue maps to str | None"),
        ("extra", list[str], "a Struct maps to dict[str, Any]"),
        ("colors", list[float], "Everything.colors (repeated enum codectest.v1.Color)"),
        ("tags", list[str] | None, "a repeated field is never None"),
        ("counts", dict[str, int] | None, "a map field is never None"),
    ],
)
def test_repeated_map_message_and_well_known_mismatches(
    field: str, annotation: typing.Any, expected: str
) -> None:
    assert expected in only(problems(pb.Everything, _everything_with(**{field: annotation})))


def test_enum_member_mismatches_are_listed_both_ways() -> None:
    class Shade(enum.Enum):
        RED = 1
        GREEN = 2
        PURPLE = 9

    @dataclasses.dataclass(kw_only=True)
    class Views:
        as_int: int
        as_name: Shade

    text = only(problems(pb.EnumViews, Views))
    assert "proto field codectest.v1.EnumViews.as_name (enum codectest.v1.Color)" in text
    assert "members ['PURPLE'] of Shade have no value in enum codectest.v1.Color" in text
    assert "values ['COLOR_BLUE'] of enum codectest.v1.Color have no member in Shade" in text
    assert "prefix 'COLOR_'" in text


@dataclasses.dataclass(kw_only=True)
class BadPoint:
    x: str
    y: int
    label: str


def _everything_with(**overrides: typing.Any) -> type:
    """Everything with some annotations replaced (all fields defaulted, to isolate them)."""
    hints = {**typing.get_type_hints(Everything), **overrides}
    fields = [(name, hint, dataclasses.field(default=None)) for name, hint in hints.items()]
    return dataclasses.make_dataclass("Bad", fields, kw_only=True)


def test_problems_of_a_nested_pair_name_the_nested_message_and_class_once() -> None:
    Bad = _everything_with(
        origin=BadPoint, maybe_point=BadPoint | None, path=list[BadPoint], named_points=dict[str, BadPoint]
    )
    text = only(problems(pb.Everything, Bad))  # once, although the pair appears four times
    assert "proto field codectest.v1.Point.x (int32) does not fit dataclass field BadPoint.x (str)" in text
    assert "annotate BadPoint.x as `int`" in text


def test_a_non_dataclass_and_unresolvable_hints_are_problems() -> None:
    class Plain:
        x: int

    assert "Plain is not a dataclass" in only(problems(pb.Point, Plain))

    @dataclasses.dataclass(kw_only=True)
    class Forward:
        x: "Missing"  # type: ignore[name-defined]  # noqa: F821

    assert "the type hints of Forward cannot be resolved" in only(problems(pb.Point, Forward))


def test_oneof_members_must_accept_none() -> None:
    @dataclasses.dataclass(kw_only=True)
    class Strict:
        word: str
        number: int | None = None

    assert (
        "codectest.v1.Choice.word is in oneof pick but dataclass field Strict.word (str) cannot be None"
        in only(problems(pb.Choice, Strict))
    )


def test_compiling_an_incompatible_pair_raises_codec_error_with_every_problem() -> None:
    @dataclasses.dataclass(kw_only=True)
    class Wrong:
        x: str
        z: int

    with pytest.raises(CodecError) as info:
        compile_decoder(pb.Point, Wrong)
    assert len(info.value.problems) == 4  # x's type; y and label missing; z extra
    assert all(p.startswith("codectest.v1.Point <-> ") for p in info.value.problems)
    with pytest.raises(CodecError):
        codec_for(pb.Point, Wrong, where=WHERE)


# --- compiled once ------------------------------------------------------------------------


def test_codec_for_returns_the_same_compiled_codec() -> None:
    assert codec_for(pb.SmallResult, SmallResult) is codec_for(pb.SmallResult, SmallResult)
    assert compile_encoder(SmallResult, pb.SmallResult) is codec_for(pb.SmallResult, SmallResult).encode
    assert compile_decoder(pb.SmallResult, SmallResult) is codec_for(pb.SmallResult, SmallResult).decode


def test_conversions_do_no_reflection_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = codec_for(pb.Everything, Everything)
    value = Everything(
        origin=Point(x=1),
        path=[Point()],
        named_points={"a": Point()},
        maybe_count=3,
        created_at=datetime.now(UTC),
    )

    def forbidden(*args: object, **kwargs: object) -> typing.NoReturn:
        raise AssertionError("reflection at call time")

    for module in (typing, dataclasses):
        for name in ("get_type_hints", "fields", "is_dataclass"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, forbidden)
    for submodule in ("hints", "messages", "fields", "elements", "enums"):
        mod = getattr(codec_module, submodule)
        for name in ("element", "compile_field", "split_optional", "python_scalar", "enum_element"):
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, forbidden)
    assert codec.decode(codec.encode(value)) == value


# --- cqrs -----------------------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("cqrs") is None, reason="cqrs not available")
def test_cqrs_request_and_response_subclasses_convert_like_any_dataclass() -> None:
    import cqrs

    class Shade(cqrs.Request):
        color: Color

    class Palette(cqrs.Response):
        shades: list[Shade]

    codec = codec_for(pb.Palette, Palette)
    value = Palette(shades=[Shade(color=Color.RED), Shade(color=Color.BLUE)])
    assert codec.decode(codec.encode(value)) == value
    assert problems(pb.Palette, Palette) == []
