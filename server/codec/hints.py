"""Reading dataclass type hints into the few shapes the codec maps, and naming both sides.

Everything here runs at compile time only.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

_SEQUENCES: frozenset[Any] = frozenset(
    {list, tuple, collections.abc.Sequence, collections.abc.MutableSequence, collections.abc.Iterable}
)
_MAPPINGS: frozenset[Any] = frozenset({dict, collections.abc.Mapping, collections.abc.MutableMapping})


def strip_newtype(hint: Any) -> Any:
    """``NewType("FileId", str)`` is a ``str`` to the codec."""
    while isinstance(hint, typing.NewType):
        hint = hint.__supertype__
    return hint


def split_optional(hint: Any) -> tuple[Any, bool]:
    """``X | None`` / ``Optional[X]`` → ``(X, True)``; anything else → ``(hint, False)``.

    A union of several non-None types is returned whole; it matches no proto field.
    """
    hint = strip_newtype(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) < len(typing.get_args(hint)) and len(args) == 1:
            return strip_newtype(args[0]), True
    return hint, False


def sequence_of(hint: Any) -> tuple[Any, type] | None:
    """``list[X]``, ``Sequence[X]``, ``tuple[X, ...]`` → ``(X, list or tuple)`` (what decode builds)."""
    origin = typing.get_origin(hint)
    if hint in (list, tuple):
        return Any, hint
    if origin not in _SEQUENCES:
        return None
    args = typing.get_args(hint)
    if origin is tuple:
        return (strip_newtype(args[0]), tuple) if len(args) == 2 and args[1] is Ellipsis else None
    return (strip_newtype(args[0]) if args else Any), list


def mapping_of(hint: Any) -> tuple[Any, Any] | None:
    """``dict[K, V]`` / ``Mapping[K, V]`` → ``(K, V)``; bare ``dict`` → ``(Any, Any)``."""
    if hint is dict:
        return Any, Any
    if typing.get_origin(hint) not in _MAPPINGS:
        return None
    args = typing.get_args(hint)
    return (strip_newtype(args[0]), strip_newtype(args[1])) if len(args) == 2 else (Any, Any)


def hint_name(hint: Any) -> str:
    """A hint as a person would write it: ``list[str]``, ``Point | None``."""
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return repr(hint).replace("typing.", "").replace("collections.abc.", "").replace("datetime.", "")


_T = FieldDescriptor
_INT_TYPES = frozenset(
    {
        _T.TYPE_INT32,
        _T.TYPE_INT64,
        _T.TYPE_UINT32,
        _T.TYPE_UINT64,
        _T.TYPE_SINT32,
        _T.TYPE_SINT64,
        _T.TYPE_FIXED32,
        _T.TYPE_FIXED64,
        _T.TYPE_SFIXED32,
        _T.TYPE_SFIXED64,
    }
)
_SCALAR_NAMES = {
    _T.TYPE_DOUBLE: "double",
    _T.TYPE_FLOAT: "float",
    _T.TYPE_BOOL: "bool",
    _T.TYPE_STRING: "string",
    _T.TYPE_BYTES: "bytes",
    _T.TYPE_INT32: "int32",
    _T.TYPE_INT64: "int64",
    _T.TYPE_UINT32: "uint32",
    _T.TYPE_UINT64: "uint64",
    _T.TYPE_SINT32: "sint32",
    _T.TYPE_SINT64: "sint64",
    _T.TYPE_FIXED32: "fixed32",
    _T.TYPE_FIXED64: "fixed64",
    _T.TYPE_SFIXED32: "sfixed32",
    _T.TYPE_SFIXED64: "sfixed64",
}


def python_scalar(field: FieldDescriptor) -> type | None:
    """The Python type of a scalar proto field; None for enums and messages."""
    if field.type in _INT_TYPES:
        return int
    return {
        _T.TYPE_DOUBLE: float,
        _T.TYPE_FLOAT: float,
        _T.TYPE_BOOL: bool,
        _T.TYPE_STRING: str,
        _T.TYPE_BYTES: bytes,
    }.get(field.type)


def message_of(field: FieldDescriptor) -> Descriptor:
    """The message type of a message field (protobuf's stubs say it may be None)."""
    assert field.message_type is not None, field.full_name
    return field.message_type


def enum_of(field: FieldDescriptor) -> EnumDescriptor:
    assert field.enum_type is not None, field.full_name
    return field.enum_type


def is_map(field: FieldDescriptor) -> bool:
    return bool(field.message_type is not None and field.message_type.GetOptions().map_entry)


def _element_name(field: FieldDescriptor) -> str:
    if field.type == _T.TYPE_ENUM:
        return f"enum {enum_of(field).full_name}"
    if field.type in (_T.TYPE_MESSAGE, _T.TYPE_GROUP):
        return message_of(field).full_name
    return _SCALAR_NAMES[field.type]


def proto_type_name(field: FieldDescriptor) -> str:
    """How the .proto spells a field's type: ``repeated string``, ``map<string, Point>``."""
    if is_map(field):
        key, value = message_of(field).fields_by_name["key"], message_of(field).fields_by_name["value"]
        return f"map<{_element_name(key)}, {_element_name(value)}>"
    name = _element_name(field)
    if field.is_repeated:
        return f"repeated {name}"
    oneof = field.containing_oneof
    if oneof is not None:
        synthetic = oneof.name == "_" + field.name and len(oneof.fields) == 1  # proto3 `optional`
        return f"optional {name}" if synthetic else f"{name} in oneof {oneof.name}"
    return name


# The wrapper messages and the Python type each maps to (as ``X | None``): the codec, the hints and
# protoc-gen-cqrs all read this one table.
WRAPPERS: dict[str, type] = {
    "google.protobuf.DoubleValue": float,
    "google.protobuf.FloatValue": float,
    "google.protobuf.Int64Value": int,
    "google.protobuf.UInt64Value": int,
    "google.protobuf.Int32Value": int,
    "google.protobuf.UInt32Value": int,
    "google.protobuf.BoolValue": bool,
    "google.protobuf.StringValue": str,
    "google.protobuf.BytesValue": bytes,
}
_WELL_KNOWN_HINTS = {
    "google.protobuf.Timestamp": "datetime",
    "google.protobuf.Duration": "timedelta",
    "google.protobuf.Struct": "dict[str, Any]",
    **{name: f"{python_type.__name__} | None" for name, python_type in WRAPPERS.items()},
}


def _element_hint(field: FieldDescriptor, *, in_container: bool) -> str:
    if field.type == _T.TYPE_ENUM:
        return f"{enum_of(field).name} (an enum.Enum), int or str"
    if field.type in (_T.TYPE_MESSAGE, _T.TYPE_GROUP):
        known = _WELL_KNOWN_HINTS.get(message_of(field).full_name)
        if known is not None:
            return known.removesuffix(" | None") if in_container else known
        return f"{message_of(field).name} (a dataclass)"
    scalar = python_scalar(field)
    assert scalar is not None
    return scalar.__name__


def suggest_hint(field: FieldDescriptor) -> str:
    """The annotation that would fit a proto field, for "fix it like this" messages."""
    if is_map(field):
        key, value = message_of(field).fields_by_name["key"], message_of(field).fields_by_name["value"]
        return f"dict[{_element_hint(key, in_container=True)}, {_element_hint(value, in_container=True)}]"
    element = _element_hint(field, in_container=field.is_repeated)
    if field.is_repeated:
        return f"list[{element}]"
    if (
        field.type in (_T.TYPE_MESSAGE, _T.TYPE_GROUP)
        and message_of(field).full_name not in _WELL_KNOWN_HINTS
    ):
        return f"{message_of(field).name} | None (a dataclass)"
    if field.has_presence and (field.type != _T.TYPE_MESSAGE or field.containing_oneof is not None):
        return element if element.endswith(" | None") else f"{element} | None"
    return element
