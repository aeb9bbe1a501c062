"""server.codec round trips and run-time errors, one behaviour per test."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from server.codec import DecodeError, EncodeError, codec_for
from tests.protos.codec_models import (
    Choice,
    Color,
    EnumViews,
    Everything,
    FullNameColor,
    Holder,
    Keyword,
    Palette,
    Point,
    Scalars,
    Tree,
    pb,
)

EVERYTHING = codec_for(pb.Everything, Everything)


def round_trip(value: Everything) -> Everything:
    return EVERYTHING.decode(EVERYTHING.encode(value))


def wire(value: Everything) -> pb.Everything:
    return pb.Everything.FromString(EVERYTHING.encode(value))


def test_scalars_round_trip_at_their_limits() -> None:
    codec = codec_for(pb.Scalars, Scalars)
    value = Scalars(
        i32=-(2**31),
        i64=-(2**63),
        u32=2**32 - 1,
        u64=2**64 - 1,
        s32=-5,
        s64=2**63 - 1,
        f32=7,
        f64=2**64 - 1,
        sf32=-7,
        sf64=-(2**63),
        dbl=-1.25e300,
        flt=0.5,
        flag=True,
        text="héllo ✓",
        data=b"\x00\xff\x00",
    )
    assert codec.decode(codec.encode(value)) == value
    assert pb.Scalars.FromString(codec.encode(value)).u64 == 2**64 - 1


def test_everything_maps_to_the_expected_message() -> None:
    value = Everything(
        name="n",
        blob=b"a\x00b",
        color=Color.BLUE,
        tags=["x", "y"],
        colors=[Color.GREEN, Color.RED],
        origin=Point(x=1, y=2),
        path=[Point(label="a"), Point(x=-3)],
        counts={"a": 1, "b": -(2**40)},
        named_points={"p": Point(y=9)},
        color_by_id={7: Color.GREEN},
        elapsed=timedelta(minutes=2),
        stamps=[datetime(2000, 1, 1, tzinfo=UTC)],
        extra={"k": [1.0, None, "s", {"z": True}]},
        ratio=0.25,
    )
    expected = pb.Everything(
        name="n",
        blob=b"a\x00b",
        color=pb.COLOR_BLUE,
        tags=["x", "y"],
        colors=[pb.COLOR_GREEN, pb.COLOR_RED],
        origin=pb.Point(x=1, y=2),
        path=[pb.Point(label="a"), pb.Point(x=-3)],
        counts={"a": 1, "b": -(2**40)},
        named_points={"p": pb.Point(y=9)},
        color_by_id={7: pb.COLOR_GREEN},
        ratio=0.25,
    )
    expected.created_at.seconds = 0  # present, at the epoch
    expected.elapsed.seconds = 120
    expected.stamps.add().seconds = 946684800
    expected.extra.update({"k": [1.0, None, "s", {"z": True}]})
    assert wire(value) == expected
    assert round_trip(value) == value


def test_empty_message_decodes_to_defaults_and_required_nested_to_a_default_instance() -> None:
    decoded = EVERYTHING.decode(pb.Everything(color=pb.COLOR_RED).SerializeToString())
    assert decoded.origin == Point()
    assert decoded.maybe_point is None
    assert decoded.tags == [] and decoded.path == [] and decoded.counts == {} and decoded.extra == {}
    assert decoded.created_at == datetime(1970, 1, 1, tzinfo=UTC)


def test_optional_scalar_distinguishes_unset_from_zero() -> None:
    assert not wire(Everything(maybe_count=None)).HasField("maybe_count")
    assert wire(Everything(maybe_count=0)).HasField("maybe_count")
    assert round_trip(Everything(maybe_count=0)).maybe_count == 0
    assert round_trip(Everything(maybe_text="")).maybe_text == ""
    assert round_trip(Everything()).maybe_count is None


def test_optional_message_is_none_when_unset_and_present_even_if_all_zero() -> None:
    assert not wire(Everything(maybe_point=None)).HasField("maybe_point")
    assert wire(Everything(maybe_point=Point())).HasField("maybe_point")
    assert round_trip(Everything(maybe_point=Point())).maybe_point == Point()
    assert round_trip(Everything()).maybe_point is None


def test_a_nested_value_that_sets_no_scalar_is_still_present() -> None:
    codec = codec_for(pb.Holder, Holder)
    assert pb.Holder.FromString(codec.encode(Holder(palette=Palette(shades=[])))).HasField("palette")
    assert codec.decode(codec.encode(Holder(palette=Palette(shades=[])))) == Holder(
        palette=Palette(shades=[])
    )
    assert codec.decode(codec.encode(Holder())) == Holder()


def test_enum_members_map_by_name_without_the_prefix() -> None:
    assert wire(Everything(color=Color.GREEN)).color == pb.COLOR_GREEN
    assert round_trip(Everything(colors=[Color.BLUE, Color.RED])).colors == [Color.BLUE, Color.RED]
    assert round_trip(Everything(color_by_id={1: Color.RED})).color_by_id == {1: Color.RED}


def test_enum_members_may_use_the_full_value_names() -> None:
    @dataclasses.dataclass(kw_only=True)
    class Views:
        as_int: FullNameColor
        as_name: FullNameColor

    codec = codec_for(pb.EnumViews, Views)
    assert (
        pb.EnumViews.FromString(
            codec.encode(Views(as_int=FullNameColor.COLOR_BLUE, as_name=FullNameColor.COLOR_UNSPECIFIED))
        ).as_int
        == 3
    )
    assert codec.decode(b"").as_name is FullNameColor.COLOR_UNSPECIFIED


def test_enum_as_int_and_as_value_name() -> None:
    codec = codec_for(pb.EnumViews, EnumViews)
    data = codec.encode(EnumViews(as_int=2, as_name="COLOR_BLUE"))
    assert pb.EnumViews.FromString(data) == pb.EnumViews(as_int=pb.COLOR_GREEN, as_name=pb.COLOR_BLUE)
    assert codec.decode(data) == EnumViews(as_int=2, as_name="COLOR_BLUE")
    assert pb.EnumViews.FromString(codec.encode(EnumViews(as_int=0, as_name="RED"))).as_name == pb.COLOR_RED
    with pytest.raises(EncodeError, match=r"as_name.*'PURPLE' is not a value name of enum codectest\.v1"):
        codec.encode(EnumViews(as_int=0, as_name="PURPLE"))


def test_optional_enum_maps_the_unspecified_zero_to_none() -> None:
    assert round_trip(Everything(maybe_color=None)).maybe_color is None
    assert round_trip(Everything(maybe_color=Color.RED)).maybe_color is Color.RED
    assert not wire(Everything(maybe_color=None)).HasField("maybe_color")


def test_required_enum_rejects_the_zero_value_and_unknown_numbers_with_their_path() -> None:
    with pytest.raises(DecodeError) as info:
        EVERYTHING.decode(pb.Everything(color=pb.COLOR_UNSPECIFIED).SerializeToString())
    assert info.value.field_path == "color"
    assert "codectest.v1.Everything field color: the field is required" in str(info.value)
    unknown = pb.Everything()
    unknown.path.add()
    unknown.path.add()
    unknown.colors.extend([1, 99])
    unknown.color = 1
    with pytest.raises(DecodeError) as info:
        EVERYTHING.decode(unknown.SerializeToString())
    assert info.value.field_path == "colors[1]"
    assert "99" in info.value.reason


def test_wrong_enum_member_type_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match=r"Everything\.color .*'red' is not a member of Color"):
        EVERYTHING.encode(Everything(color="red"))  # type: ignore[arg-type]


def test_timestamps_keep_the_instant_and_decode_in_utc() -> None:
    plus_five = datetime(2024, 2, 29, 23, 30, 0, 999999, tzinfo=timezone(timedelta(hours=5)))
    decoded = round_trip(Everything(created_at=plus_five)).created_at
    assert decoded == plus_five
    assert decoded.tzinfo is UTC
    assert decoded.hour == 18 and decoded.microsecond == 999999


def test_naive_datetimes_are_taken_as_utc() -> None:
    naive = datetime(2024, 1, 1, 12, 0)
    assert round_trip(Everything(created_at=naive)).created_at == naive.replace(tzinfo=UTC)


def test_timestamps_cover_datetimes_whole_range() -> None:
    edges = [
        datetime.min.replace(tzinfo=UTC),
        datetime.max.replace(tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
    ]
    assert round_trip(Everything(stamps=edges)).stamps == edges
    assert wire(Everything(stamps=edges[2:])).stamps[0].nanos == 1000  # nanos stay non-negative


def test_timestamp_nanos_are_truncated_to_microseconds() -> None:
    message = pb.Everything(color=1)
    message.created_at.nanos = 1999
    assert EVERYTHING.decode(message.SerializeToString()).created_at.microsecond == 1


def test_optional_timestamp_is_none_when_unset() -> None:
    assert round_trip(Everything()).maybe_at is None
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert round_trip(Everything(maybe_at=epoch)).maybe_at == epoch


def test_negative_durations_round_trip_with_same_sign_seconds_and_nanos() -> None:
    value = timedelta(seconds=-1, microseconds=-500_000)
    assert round_trip(Everything(elapsed=value)).elapsed == value
    sent = wire(Everything(elapsed=value)).elapsed
    assert (sent.seconds, sent.nanos) == (-1, -500_000_000)
    big = timedelta(days=-3_000_000, microseconds=1)
    assert round_trip(Everything(elapsed=big)).elapsed == big


def test_duration_nanos_truncate_toward_zero() -> None:
    message = pb.Everything(color=1)
    message.elapsed.seconds, message.elapsed.nanos = -2, -1999
    assert EVERYTHING.decode(message.SerializeToString()).elapsed == timedelta(seconds=-2, microseconds=-1)


def test_duration_outside_protobufs_range_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match=r"Everything\.elapsed .*range"):
        EVERYTHING.encode(Everything(elapsed=timedelta(days=4_000_000)))


def test_bytes_keep_nul_bytes_and_empty_containers_stay_empty() -> None:
    value = Everything(blob=b"\x00\x00x\x00", tags=[], path=[], counts={}, named_points={})
    assert round_trip(value) == value


def test_any_non_string_iterable_encodes_as_repeated() -> None:
    value = Everything(tags=("a", "b"), path=(Point(x=i) for i in range(2)))  # type: ignore[arg-type]
    decoded = round_trip(value)
    assert decoded.tags == ["a", "b"] and decoded.path == [Point(x=0), Point(x=1)]


def test_a_string_for_a_repeated_field_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match=r"Everything\.tags .*expected a list, got str"):
        EVERYTHING.encode(Everything(tags="abc"))  # type: ignore[arg-type]


def test_nested_repeated_messages_and_maps_of_messages_round_trip() -> None:
    tree = Tree(name="root", children=[Tree(name="a", children=[Tree(name="a1")]), Tree(name="b")])
    codec = codec_for(pb.Tree, Tree)
    assert codec.decode(codec.encode(tree)) == tree
    value = Everything(named_points={"a": Point(x=1), "b": Point()}, path=[Point(), Point(label="z")])
    assert round_trip(value) == value


def test_wrappers_map_unset_to_none_and_keep_set_zero_values() -> None:
    assert not wire(Everything()).HasField("nick")
    value = Everything(nick="", big=0, ok=False)
    assert wire(value).HasField("nick") and wire(value).HasField("ok")
    assert round_trip(value) == value
    assert round_trip(Everything(nick="n", big=-(2**63), ok=True)) == Everything(
        nick="n", big=-(2**63), ok=True
    )


def test_struct_round_trips_json_like_values_with_numbers_as_floats() -> None:
    extra = {"n": 1, "nested": {"list": [True, None, "x", {"deep": 2.5}]}}
    assert round_trip(Everything(extra=extra)).extra == {
        "n": 1.0,
        "nested": {"list": [True, None, "x", {"deep": 2.5}]},
    }
    with pytest.raises(EncodeError, match=r"Everything\.extra"):
        EVERYTHING.encode(Everything(extra=["not", "a", "dict"]))  # type: ignore[arg-type]


def test_oneof_members_are_none_when_not_chosen_and_only_one_may_be_set() -> None:
    codec = codec_for(pb.Choice, Choice)
    assert codec.decode(codec.encode(Choice(number=0))) == Choice(number=0)
    assert pb.Choice.FromString(codec.encode(Choice(word="w"))).WhichOneof("pick") == "word"
    with pytest.raises(EncodeError, match="oneof pick"):
        codec.encode(Choice(word="w", number=1))


def test_python_keyword_fields_use_a_trailing_underscore() -> None:
    codec = codec_for(pb.Keyword, Keyword)
    assert getattr(pb.Keyword.FromString(codec.encode(Keyword(from_="x"))), "from") == "x"
    assert codec.decode(codec.encode(Keyword(from_="x"))) == Keyword(from_="x")


def test_message_level_conversions_for_nested_use() -> None:
    message = EVERYTHING.to_message(Everything(name="m"))
    assert isinstance(message, pb.Everything) and message.name == "m"
    assert EVERYTHING.from_message(message) == Everything(name="m")


# --- decode errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", id="random bytes (invalid varint)"),
        pytest.param(b"\x0a\x05ab", id="truncated length-delimited field"),
        pytest.param(pb.Everything(name="abcdef").SerializeToString()[:-2], id="truncated message"),
        pytest.param(b"\x0a\x02\xff\xfe", id="bad UTF-8 in a string field"),
        pytest.param(b"\x07", id="invalid wire type"),
    ],
)
def test_unparsable_bytes_raise_one_decode_error_naming_the_message(data: bytes) -> None:
    with pytest.raises(DecodeError, match=r"^cannot decode codectest\.v1\.Everything: invalid wire") as info:
        EVERYTHING.decode(data)
    assert isinstance(info.value, ValueError)


def test_a_known_field_sent_with_the_wrong_wire_type_is_refused_and_unknown_fields_pass() -> None:
    codec = codec_for(pb.Point, Point)
    with pytest.raises(DecodeError) as info:
        codec.decode(b"\x08\x01\x1a\x01a" + b"\x0a\x01a")  # x (varint) sent length-delimited
    assert info.value.field_path == "x"
    assert "wire type 2" in str(info.value)
    assert codec.decode(b"\x08\x05\xb8\x06\x01") == Point(x=5)  # field 103 is unknown: kept, ignored


def test_decode_errors_inside_lists_maps_and_nested_messages_carry_the_full_path() -> None:
    palette = pb.Palette(shades=[pb.Shade(color=pb.COLOR_RED), pb.Shade(color=42)])
    with pytest.raises(DecodeError) as info:
        codec_for(pb.Palette, Palette).decode(palette.SerializeToString())
    assert info.value.field_path == "shades[1].color"
    assert info.value.message_name == "codectest.v1.Palette"
    assert str(info.value).startswith("cannot decode codectest.v1.Palette field shades[1].color: 42 is not")

    by_id = pb.Everything(color=1, color_by_id={5: 99})
    with pytest.raises(DecodeError) as info:
        EVERYTHING.decode(by_id.SerializeToString())
    assert info.value.field_path == "color_by_id[5]"


def test_timestamps_beyond_datetimes_range_are_decode_errors() -> None:
    message = pb.Everything(color=1)
    message.stamps.add()
    message.stamps.add().seconds = 2**50
    with pytest.raises(DecodeError) as info:
        EVERYTHING.decode(message.SerializeToString())
    assert info.value.field_path == "stamps[1]"


def test_errors_raised_by_the_dataclass_itself_propagate_unchanged() -> None:
    class Invalid(Exception):
        pass

    @dataclasses.dataclass(kw_only=True)
    class Checked:
        x: int = 0
        y: int = 0
        label: str = ""

        def __post_init__(self) -> None:
            if self.x < 0:
                raise Invalid("x must not be negative")

    with pytest.raises(Invalid):
        codec_for(pb.Point, Checked).decode(pb.Point(x=-1).SerializeToString())


# --- encode errors ------------------------------------------------------------------------


def test_encoding_an_object_of_the_wrong_type_names_the_expected_class() -> None:
    with pytest.raises(EncodeError, match=r"expected Everything for codectest.v1.Everything, got Point"):
        EVERYTHING.encode(Point())  # type: ignore[arg-type]


def test_a_wrong_field_type_names_the_dataclass_field_and_the_proto_field() -> None:
    with pytest.raises(EncodeError) as info:
        EVERYTHING.encode(Everything(name=5))  # type: ignore[arg-type]
    assert info.value.field_path == "name"
    assert str(info.value).startswith(
        "cannot encode Everything.name (proto field codectest.v1.Everything.name)"
    )


def test_a_value_out_of_range_names_the_nested_field_with_its_index() -> None:
    with pytest.raises(EncodeError) as info:
        EVERYTHING.encode(Everything(path=[Point(), Point(x=2**40)]))
    assert info.value.field_path == "path[1].x"
    assert info.value.proto_field == "codectest.v1.Point.x"
    assert "Everything.path[1].x" in str(info.value)


def test_a_bad_map_value_names_its_key() -> None:
    with pytest.raises(EncodeError) as info:
        EVERYTHING.encode(Everything(named_points={"ok": Point(), "bad": "point"}))  # type: ignore[dict-item]
    assert info.value.field_path == "named_points['bad']"
    assert "expected Point" in str(info.value)
    with pytest.raises(EncodeError) as info:
        EVERYTHING.encode(Everything(counts={"a": 1, "b": "two"}))  # type: ignore[dict-item]
    assert info.value.field_path == "counts['b']"


def test_a_bad_item_of_a_repeated_scalar_names_its_index() -> None:
    with pytest.raises(EncodeError) as info:
        EVERYTHING.encode(Everything(tags=["a", "b", 3]))  # type: ignore[list-item]
    assert info.value.field_path == "tags[2]"


def test_none_for_a_field_that_cannot_be_none_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match=r"Everything\.name"):
        EVERYTHING.encode(Everything(name=None))  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match=r"Everything\.origin.*expected Point"):
        EVERYTHING.encode(Everything(origin=None))  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match=r"Everything\.created_at.*expected a datetime"):
        EVERYTHING.encode(Everything(created_at=None))  # type: ignore[arg-type]
