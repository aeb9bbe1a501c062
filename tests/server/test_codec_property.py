"""Property: any value of the dataclass survives encode → decode unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from server.codec import codec_for
from tests.protos.codec_models import Color, Everything, Point, Scalars, Tree, pb

text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)  # no lone surrogates
int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
colors = st.sampled_from(Color)
points = st.builds(Point, x=int32, y=int32, label=text)
# Any offset; years kept off the edges so the instant stays inside datetime's range in UTC.
instants = st.datetimes(
    min_value=datetime(2, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.builds(
        timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
    ),
)
durations = st.timedeltas(min_value=timedelta(days=-3_650_000), max_value=timedelta(days=3_650_000))
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)

everything = st.builds(
    Everything,
    name=text,
    blob=st.binary(max_size=16),
    maybe_count=st.none() | int32,
    maybe_text=st.none() | text,
    color=colors,
    maybe_color=st.none() | colors,
    tags=st.lists(text, max_size=4),
    colors=st.lists(colors, max_size=4),
    origin=points,
    maybe_point=st.none() | points,
    path=st.lists(points, max_size=3),
    counts=st.dictionaries(text, int64, max_size=3),
    named_points=st.dictionaries(text, points, max_size=3),
    color_by_id=st.dictionaries(int32, colors, max_size=3),
    created_at=instants,
    maybe_at=st.none() | instants,
    elapsed=durations,
    stamps=st.lists(instants, max_size=3),
    nick=st.none() | text,
    big=st.none() | int64,
    ok=st.none() | st.booleans(),
    extra=st.dictionaries(text, json_values, max_size=3),
    ratio=st.floats(allow_nan=False),
)


@settings(max_examples=100, deadline=None)
@given(everything)
def test_every_everything_round_trips(value: Everything) -> None:
    codec = codec_for(pb.Everything, Everything)
    decoded = codec.decode(codec.encode(value))
    assert decoded == value
    assert all(stamp.tzinfo is UTC for stamp in [decoded.created_at, *decoded.stamps])


@settings(max_examples=60, deadline=None)
@given(
    st.builds(
        Scalars,
        i32=int32,
        i64=int64,
        u32=st.integers(0, 2**32 - 1),
        u64=st.integers(0, 2**64 - 1),
        s32=int32,
        s64=int64,
        f32=st.integers(0, 2**32 - 1),
        f64=st.integers(0, 2**64 - 1),
        sf32=int32,
        sf64=int64,
        dbl=st.floats(allow_nan=False),
        flt=st.floats(width=32, allow_nan=False),
        flag=st.booleans(),
        text=text,
        data=st.binary(max_size=16),
    )
)
def test_every_scalars_value_round_trips(value: Scalars) -> None:
    codec = codec_for(pb.Scalars, Scalars)
    assert codec.decode(codec.encode(value)) == value


trees = st.recursive(
    st.builds(Tree, name=text, children=st.just([])),
    lambda inner: st.builds(Tree, name=text, children=st.lists(inner, max_size=3)),
    max_leaves=10,
)


@settings(max_examples=30, deadline=None)
@given(trees)
def test_every_tree_round_trips(value: Tree) -> None:
    codec = codec_for(pb.Tree, Tree)
    assert codec.decode(codec.encode(value)) == value
