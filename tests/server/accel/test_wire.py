"""The compiled wire encoder of flat messages (``server/accel/_cwire.pyx``) writes exactly what
protobuf writes, and hands every value it does not take as is to the protobuf path, which accepts
or refuses it as before. Without it, the codec encodes through protobuf."""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import accel
from server.codec import Codec, EncodeError, codec_for
from tests.protos.codec_models import Everything, FarScalars, Scalars, Sparse, pb

try:
    from server.accel import _cwire as compiled_wire
    from server.accel.wire import varint, wire_encoder
except ImportError:  # an install without a C compiler
    compiled_wire = None  # type: ignore[assignment]
# CI sets this: there the install must have built the compiled encoder
REQUIRE_COMPILED = os.environ.get("CQRS_GRPC_REQUIRE_COMPILED") == "1"
needs_compiled = pytest.mark.skipif(
    compiled_wire is None and not REQUIRE_COMPILED, reason="installed without the compiled encoder"
)
CODEC = codec_for(pb.Scalars, Scalars)
BUILDS = [pytest.param("compiled", marks=needs_compiled)]


def encoder_of(codec: Codec[Any], build: str) -> Callable[[Any], bytes]:
    """The codec's direct encoder as the server runs it."""
    assert build == "compiled"
    assert compiled_wire is not None and isinstance(codec.encode, compiled_wire.DirectEncoder)
    return codec.encode


ZEROS: dict[str, Any] = {
    "i32": 0, "i64": 0, "u32": 0, "u64": 0, "s32": 0, "s64": 0, "f32": 0, "f64": 0,
    "sf32": 0, "sf64": 0, "dbl": 0.0, "flt": 0.0, "flag": False, "text": "", "data": b"",
}  # fmt: skip
INT_RANGES = {
    "i32": (-(2**31), 2**31 - 1), "i64": (-(2**63), 2**63 - 1), "u32": (0, 2**32 - 1),
    "u64": (0, 2**64 - 1), "s32": (-(2**31), 2**31 - 1), "s64": (-(2**63), 2**63 - 1),
    "f32": (0, 2**32 - 1), "f64": (0, 2**64 - 1), "sf32": (-(2**31), 2**31 - 1),
    "sf64": (-(2**63), 2**63 - 1),
}  # fmt: skip


class Level(enum.IntEnum):
    HIGH = 3


def by_protobuf(value: Scalars) -> tuple[str, Any]:
    """The reference: the same value written through a protobuf message."""
    try:
        return "ok", CODEC.to_message(value).SerializeToString()
    except EncodeError as error:
        return "error", str(error)


def directly(value: Scalars, build: str) -> tuple[str, Any]:
    try:
        return "ok", encoder_of(CODEC, build)(value)
    except EncodeError as error:
        return "error", str(error)


def edges(low: int, high: int) -> st.SearchStrategy[int]:
    near = [low, low + 1, -1, 0, 1, 127, 128, 16383, 16384, high - 1, high]
    return st.sampled_from([n for n in near if low <= n <= high]) | st.integers(low, high)


floats = st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan, 5e-324]) | st.floats()
text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=200)
valid = st.builds(
    Scalars,
    **{name: edges(*bounds) for name, bounds in INT_RANGES.items()},
    dbl=floats,
    flt=floats,
    flag=st.booleans(),
    text=text,
    data=st.binary(max_size=300),
)


@needs_compiled
def test_flat_messages_are_encoded_directly_and_others_through_protobuf() -> None:
    assert CODEC.encodes_directly
    assert not codec_for(pb.Everything, Everything).encodes_directly


@needs_compiled
def test_the_server_runs_the_compiled_encoder_which_make_install_builds() -> None:
    assert compiled_wire is not None, "the install did not build server/accel/_cwire.pyx"
    assert isinstance(CODEC.encode, compiled_wire.DirectEncoder)


def test_with_extensions_off_the_codec_encodes_through_protobuf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "NO_EXTENSIONS", True)  # as CQRS_GRPC_NO_EXTENSIONS=1, or no C compiler
    codec = Codec(pb.Scalars, Scalars, CODEC.plan)
    assert not codec.encodes_directly
    assert codec.encode == codec.encode_by_message
    value = Scalars(**{**ZEROS, "i64": -3, "text": "é"})
    assert codec.encode(value) == by_protobuf(value)[1]


@needs_compiled
def test_a_message_with_more_fields_than_the_compiled_encoder_holds_goes_through_protobuf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compiled_wire, "FIELD_LIMIT", len(ZEROS) - 1)
    assert wire_encoder(CODEC.plan, CODEC.encode_by_message) is None


@needs_compiled
def test_the_compiled_encoder_refuses_a_plan_it_cannot_write() -> None:
    assert compiled_wire is not None
    with pytest.raises(ValueError, match="at most 64 fields"):
        compiled_wire.DirectEncoder(Scalars, bytes, [(f"f{n}", 0, b"\x08") for n in range(65)])
    with pytest.raises(ValueError, match="kind 15"):
        compiled_wire.DirectEncoder(Scalars, bytes, [("i32", len(compiled_wire.KINDS), b"\x08")])
    for tag in (b"", b"\x80" * 6):  # a field's tag is one to five bytes
        with pytest.raises(ValueError, match="tag"):
            compiled_wire.DirectEncoder(Scalars, bytes, [("i32", 0, tag)])
    encoder = compiled_wire.DirectEncoder(Scalars, bytes, [("i32", 0, b"\x08")])
    with pytest.raises(TypeError, match="initialised once"):
        encoder.__init__(Scalars, bytes, [])


@pytest.mark.parametrize("build", BUILDS)
@settings(max_examples=300, deadline=None, derandomize=True)
@given(valid)
def test_valid_values_are_written_byte_for_byte_as_protobuf_writes_them(build: str, value: Scalars) -> None:
    assert directly(value, build) == by_protobuf(value)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("length", [127, 128, 300, 16383, 16384, 70_000])
def test_long_strings_and_bytes_get_their_multi_byte_length_as_protobuf_writes_it(
    length: int, build: str
) -> None:
    # Hypothesis rarely draws values this long, and a length of 128 or more is written another way
    for text in ("a" * length, "é" * (length // 2)):  # 2 bytes per "é": the UTF-8 length counts
        value = Scalars(**{**ZEROS, "i32": 1, "text": text, "data": b"\xff" * length})
        assert directly(value, build) == by_protobuf(value)


@pytest.mark.parametrize("build", BUILDS)
@settings(max_examples=200, deadline=None, derandomize=True)
@given(valid)
def test_every_scalar_kind_with_a_two_to_five_byte_tag_is_written_as_protobuf_writes_it(
    build: str, value: Scalars
) -> None:
    # the tag is packed with fixed-width values and tabled with one-byte numbers and lengths
    far_codec = codec_for(pb.FarScalars, FarScalars)
    far = FarScalars(**dataclasses.asdict(value))
    assert far_codec.encodes_directly
    assert encoder_of(far_codec, build)(far) == far_codec.to_message(far).SerializeToString()


@pytest.mark.parametrize("build", BUILDS)
def test_zero_values_are_left_out_but_negative_zero_floats_are_written(build: str) -> None:
    encode = encoder_of(CODEC, build)
    assert encode(Scalars(**ZEROS)) == b""
    for field in ("dbl", "flt"):
        negative_zero = Scalars(**{**ZEROS, field: -0.0})
        assert encode(negative_zero) == by_protobuf(negative_zero)[1] != b""


# Values of other types than the field's, or outside its range: protobuf decides about each.
odd_values = st.sampled_from(
    [True, False, Level.HIGH, 1.0, 0.0, 2.5, 7, 0, -1, 2**31, -(2**31) - 1, 2**32, 2**63, 2**64,
     -(2**63) - 1, None, "7", b"7", "\ud800", bytearray(b"ab"), 1e39, -1e39, math.nan]
)  # fmt: skip


@pytest.mark.parametrize("build", BUILDS)
@settings(max_examples=300, deadline=None, derandomize=True)
@given(valid, st.sampled_from(sorted(ZEROS)), odd_values)
def test_odd_values_get_the_protobuf_paths_answer(build: str, value: Scalars, field: str, odd: Any) -> None:
    setattr(value, field, odd)
    assert directly(value, build) == by_protobuf(value)


@pytest.mark.parametrize("build", BUILDS)
def test_a_wrong_value_is_refused_naming_the_field(build: str) -> None:
    encode = encoder_of(CODEC, build)
    with pytest.raises(EncodeError, match=r"Scalars\.u32"):
        encode(Scalars(**{**ZEROS, "u32": -1}))
    with pytest.raises(EncodeError, match=r"Scalars\.text"):
        encode(Scalars(**{**ZEROS, "text": "\ud800"}))
    with pytest.raises(EncodeError, match=r"Scalars\.i32"):
        encode(Scalars(**{**ZEROS, "i32": 2**31}))


@pytest.mark.parametrize("build", BUILDS)
def test_an_attribute_that_raises_gets_the_protobuf_paths_answer(build: str) -> None:
    value = Scalars(**{**ZEROS, "text": "kept"})
    del value.u64  # reading it raises AttributeError, in the fast path and in protobuf's
    assert directly(value, build) == by_protobuf(value)
    assert directly(value, build)[0] == "error"


@pytest.mark.parametrize("build", BUILDS)
def test_a_subclass_instance_is_encoded_through_protobuf(build: str) -> None:
    class Tagged(Scalars):
        pass

    value = Tagged(**{**ZEROS, "i32": -5, "text": "é"})
    assert encoder_of(CODEC, build)(value) == by_protobuf(value)[1]


@pytest.mark.parametrize("build", BUILDS)
@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    st.builds(
        Sparse,
        late=st.binary(max_size=200),
        middle=edges(-(2**63), 2**63 - 1),
        early=text,
        ratio=floats,
    )
)
def test_long_tags_and_fields_declared_out_of_order_are_written_as_protobuf_writes_them(
    build: str, value: Sparse
) -> None:
    codec = codec_for(pb.Sparse, Sparse)
    assert codec.encodes_directly
    assert encoder_of(codec, build)(value) == codec.to_message(value).SerializeToString()


def by_the_book(value: int) -> bytes:
    """Base-128 varint the plain way: seven bits per byte, low first, high bit = more follows."""
    out = bytearray()
    while value > 127:
        out.append(value & 127 | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


@needs_compiled
def test_varints_are_right_on_both_sides_of_every_length_boundary() -> None:
    """Field tags are varints: each length ends exactly where one more byte is needed."""
    values = {(1 << bits) + delta for bits in range(65) for delta in (-2, -1, 0, 1)}
    for value in sorted(v for v in values if 0 <= v < 1 << 64):
        assert varint(value) == by_the_book(value), value


@pytest.mark.parametrize("build", BUILDS)
def test_encoding_a_non_ascii_string_leaves_no_copy_in_it(build: str) -> None:
    # CPython can cache a string's UTF-8 form inside it for the string's lifetime; a response's
    # strings may be long-lived (a handler's constants), so the encoder takes a temporary copy
    text = "".join(["é"] * 10)
    size = sys.getsizeof(text)
    value = Scalars(**{**ZEROS, "text": text})
    encoded = encoder_of(CODEC, build)(value)
    assert sys.getsizeof(text) == size
    assert encoded == by_protobuf(value)[1]  # protobuf's own path does cache it: asked last
