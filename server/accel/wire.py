"""Which messages the compiled wire encoder (``_cwire.pyx``) takes, and how it is set up for one.

A message qualifies when every field is a plain scalar: no nested message, list, map, presence,
oneof or conversion (the codec's plan copies each field as it is). Imported only where the
compiled module was built: importing this raises ImportError otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from server.accel import _cwire
from server.codec.messages import MessagePlan

_F = FieldDescriptor
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5

# proto type -> its wire type
_WIRE_TYPES: dict[int, int] = {
    **dict.fromkeys(
        (_F.TYPE_INT32, _F.TYPE_INT64, _F.TYPE_UINT32, _F.TYPE_UINT64, _F.TYPE_SINT32, _F.TYPE_SINT64),
        _VARINT,
    ),
    _F.TYPE_BOOL: _VARINT,
    _F.TYPE_FIXED32: _FIXED32,
    _F.TYPE_SFIXED32: _FIXED32,
    _F.TYPE_FLOAT: _FIXED32,
    _F.TYPE_FIXED64: _FIXED64,
    _F.TYPE_SFIXED64: _FIXED64,
    _F.TYPE_DOUBLE: _FIXED64,
    _F.TYPE_STRING: _LENGTH,
    _F.TYPE_BYTES: _LENGTH,
}

# proto type -> the compiled encoder's number for it (it names its kinds as protobuf does)
COMPILED_KINDS: dict[int, int] = {
    getattr(_F, f"TYPE_{name.upper()}"): number for number, name in enumerate(_cwire.KINDS)
}


def varint(value: int) -> bytes:
    """A non-negative integer as a base-128 varint."""
    out = bytearray()
    while value > 127:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(field: FieldDescriptor) -> bytes:
    """The field's key on the wire: its number and wire type, as a varint."""
    return varint(field.number << 3 | _WIRE_TYPES[field.type])


def wire_encoder(plan: MessagePlan, slow: Callable[[Any], bytes]) -> Callable[[Any], bytes] | None:
    """The compiled encoder for ``plan``'s message, or None when a field is not a plain scalar.

    ``slow`` is the protobuf path: it gets every object the compiled code does not take as is.
    """
    descriptor = plan.descriptor
    if plan.writers or plan.oneofs or len(plan.plain) != len(descriptor.fields):
        return None
    if descriptor.GetOptions().message_set_wire_format or len(descriptor.fields) > _cwire.FIELD_LIMIT:
        return None
    fields = sorted(descriptor.fields, key=lambda f: f.number)
    if any(
        field.is_repeated
        or field.has_presence
        or field.containing_oneof is not None
        or field.type not in COMPILED_KINDS
        for field in fields
    ):
        return None
    tagged = [(field.name, COMPILED_KINDS[field.type], _tag(field)) for field in fields]
    return _cwire.DirectEncoder(plan.cls, slow, tagged)
