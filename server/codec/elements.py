"""How ONE value of a field converts (not a list or a map of them): scalars, enums,
well-known types, nested dataclasses.

An ``Element`` is decided at compile time; its functions are what runs per value.
Scalar kinds are assigned to the message (``to_pb`` → value), message kinds are written
into a sub-message protobuf hands us (``fill``), which avoids building and copying one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from server.codec.base import AS_IS, Element, Mismatch, Nested
from server.codec.enums import enum_element
from server.codec.errors import EncodeError
from server.codec.hints import WRAPPERS, enum_of, hint_name, mapping_of, message_of, python_scalar

# --- Timestamp / Duration -----------------------------------------------------------------
# Manual seconds/nanos arithmetic: faster than Timestamp.FromDatetime or
# assigning a datetime to the field, and exact over datetime's whole range (years 1-9999,
# which is also Timestamp's). Nanoseconds below a microsecond are truncated on decode.

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MAX_DURATION_SECONDS = 315_576_000_000  # the range google/protobuf/duration.proto allows


def timestamp_to_datetime(ts: Any) -> datetime:
    """An aware datetime in UTC."""
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def fill_timestamp(ts: Any, value: Any) -> None:
    """Aware datetimes keep their instant; naive ones are taken as UTC (not local time)."""
    if not isinstance(value, datetime):
        raise EncodeError(f"expected a datetime, got {type(value).__name__}")
    delta = value - (_NAIVE_EPOCH if value.tzinfo is None else _EPOCH)
    ts.seconds = delta.days * 86_400 + delta.seconds
    ts.nanos = delta.microseconds * 1000


def duration_to_timedelta(duration: Any) -> timedelta:
    nanos = duration.nanos
    micros = nanos // 1000 if nanos >= 0 else -(-nanos // 1000)  # truncate toward zero, like seconds
    return timedelta(seconds=duration.seconds, microseconds=micros)


def fill_duration(duration: Any, value: Any) -> None:
    if not isinstance(value, timedelta):
        raise EncodeError(f"expected a timedelta, got {type(value).__name__}")
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    seconds, rest = divmod(abs(micros), 1_000_000)
    if seconds > _MAX_DURATION_SECONDS:
        raise EncodeError(f"{value} is outside google.protobuf.Duration's range of ±10000 years")
    sign = -1 if micros < 0 else 1  # Duration wants seconds and nanos of the same sign
    duration.seconds = sign * seconds
    duration.nanos = sign * rest * 1000


# --- Struct ---------------------------------------------------------------------------------


def _value_to_py(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [_value_to_py(item) for item in value.list_value.values]
    if kind is None or kind == "null_value":
        return None
    return getattr(value, kind)


def struct_to_dict(struct: Any) -> dict[str, Any]:
    """JSON-like values; every number comes back as a float (that is all Struct stores)."""
    return {key: _value_to_py(value) for key, value in struct.fields.items()}


def fill_struct(struct: Any, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise EncodeError(f"expected a dict for google.protobuf.Struct, got {type(value).__name__}")
    struct.update(value)


def _fill_wrapper(wrapper: Any, value: Any) -> None:
    wrapper.value = value


def _message_element(field: FieldDescriptor, hint: Any, nested: Nested) -> Element | Mismatch:
    full_name = message_of(field).full_name
    if full_name == "google.protobuf.Timestamp":
        if hint is datetime:
            return Element(to_py=timestamp_to_datetime, fill=fill_timestamp, marks_present=True)
        return Mismatch("a Timestamp maps to datetime")
    if full_name == "google.protobuf.Duration":
        if hint is timedelta:
            return Element(to_py=duration_to_timedelta, fill=fill_duration, marks_present=True)
        return Mismatch("a Duration maps to timedelta")
    if full_name in WRAPPERS:
        if hint is WRAPPERS[full_name]:
            return Element(to_py=attrgetter("value"), fill=_fill_wrapper, marks_present=True)
        return Mismatch(f"a {message_of(field).name} maps to {WRAPPERS[full_name].__name__} | None")
    if full_name == "google.protobuf.Struct":
        key_value = mapping_of(hint)
        if key_value is not None and key_value[0] in (str, Any):
            return Element(to_py=struct_to_dict, fill=fill_struct)
        return Mismatch("a Struct maps to dict[str, Any]")
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        from_message, fill = nested(message_of(field), hint)
        return Element(to_py=from_message, fill=fill)
    return Mismatch(f"message {full_name} maps to a dataclass, and {hint_name(hint)} is not one")


def element(field: FieldDescriptor, hint: Any, *, optional: bool, nested: Nested) -> Element | Mismatch:
    """The conversion of one value of ``field`` to and from ``hint`` (already without ``| None``)."""
    if field.type == FieldDescriptor.TYPE_ENUM:
        return enum_element(enum_of(field), hint, optional=optional)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message_element(field, hint, nested)
    expected = python_scalar(field)
    if hint is expected:
        return AS_IS
    return Mismatch(f"the proto field holds {expected.__name__ if expected else '?'} values")
