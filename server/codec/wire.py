"""Encoding flat messages straight to wire bytes, without building a protobuf message.

A streamed response is encoded once per message, and building a protobuf object only to
serialize it is much of the encode's cost (the object, one ``setattr`` per field, the serializer
call). For a message whose fields are all plain scalars (no nested messages, lists, maps,
presence or conversions, which is what most streamed results are) the wire format is a
few concatenations, which generated straight-line code writes directly:

    def encode(obj):
        if obj.__class__ is not cls:
            return slow(obj)
        try:
            out = b""
            v = obj.index
            if v.__class__ is not int or not 0 <= v < 18446744073709551616:
                raise Mismatch
            if v:
                out += P0(T0, v)           # the tag and the value packed together
            ...
            return out
        except Exception:  # Mismatch, or anything unexpected
            pass
        return slow(obj)

Where the project's compiled extension is built (``server/codec/_cwire.pyx``, by ``make install``)
the same promise is kept in C; the generated code below is the fallback for an install without a
C compiler, and the reference the compiled one is tested against.

The fast code only takes values it can encode exactly as protobuf does: the exact Python type
of the field (``int`` for integers, never ``bool`` or an ``IntEnum``), inside the field's
range. Anything else (another type, a value out of range, a lone surrogate in a string)
goes to ``slow``, the protobuf path, which accepts what protobuf accepts and raises the
codec's ``EncodeError`` naming the field for the rest. Output is byte-for-byte what
protobuf writes (tested against it): fields in number order, proto3 zero values left out.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from server.codec.generate import define, safe_names
from server.codec.messages import MessagePlan

try:
    from server.codec import _cwire
except ImportError:  # built without a C compiler: the generated Python encoder serves
    _cwire = None  # type: ignore[assignment]

_F = FieldDescriptor


class _Mismatch(Exception):
    """A value the fast code does not take as is; raised inside it to reach the careful path."""


_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5

# Single-byte varints, the common case for lengths and small numbers.
_SMALL = tuple(bytes((n,)) for n in range(128))


def varint(value: int) -> bytes:
    """A non-negative integer as a base-128 varint (callers map negatives to 64-bit first).

    Unrolled up to four bytes (lengths below 256 MiB, most numbers), which is cheaper than the
    loop below that handles longer values.
    """
    if value < 128:
        return _SMALL[value]
    if value < 16384:
        return bytes((value & 127 | 128, value >> 7))
    if value < 2097152:
        return bytes((value & 127 | 128, value >> 7 & 127 | 128, value >> 14))
    if value < 268435456:
        return bytes((value & 127 | 128, value >> 7 & 127 | 128, value >> 14 & 127 | 128, value >> 21))
    out = bytearray()
    while value > 127:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def _signed_varint(value: int) -> bytes:
    """int32/int64/enum: negatives are sign-extended to 64 bits, ten bytes on the wire."""
    return varint(value if value >= 0 else value + (1 << 64))


def _zigzag32(value: int) -> bytes:
    return varint((value << 1) ^ (value >> 31))


def _zigzag64(value: int) -> bytes:
    return varint((value << 1) ^ (value >> 63))


_INT32 = (-(1 << 31), 1 << 31)
_INT64 = (-(1 << 63), 1 << 63)
_UINT32 = (0, 1 << 32)
_UINT64 = (0, 1 << 64)

# proto type -> (Python type, half-open range or None, wire type, name of the writer in the namespace)
_KINDS: dict[int, tuple[type, tuple[int, int] | None, int, str]] = {
    _F.TYPE_INT32: (int, _INT32, _VARINT, "SIGNED"),
    _F.TYPE_INT64: (int, _INT64, _VARINT, "SIGNED"),
    _F.TYPE_UINT32: (int, _UINT32, _VARINT, "VARINT"),
    _F.TYPE_UINT64: (int, _UINT64, _VARINT, "VARINT"),
    _F.TYPE_SINT32: (int, _INT32, _VARINT, "ZIGZAG32"),
    _F.TYPE_SINT64: (int, _INT64, _VARINT, "ZIGZAG64"),
    _F.TYPE_FIXED32: (int, _UINT32, _FIXED32, "FIXED32"),
    _F.TYPE_FIXED64: (int, _UINT64, _FIXED64, "FIXED64"),
    _F.TYPE_SFIXED32: (int, _INT32, _FIXED32, "SFIXED32"),
    _F.TYPE_SFIXED64: (int, _INT64, _FIXED64, "SFIXED64"),
    _F.TYPE_DOUBLE: (float, None, _FIXED64, "DOUBLE"),
    _F.TYPE_FLOAT: (float, None, _FIXED32, "FLOAT"),
    _F.TYPE_BOOL: (bool, None, _VARINT, ""),
    _F.TYPE_STRING: (str, None, _LENGTH, ""),
    _F.TYPE_BYTES: (bytes, None, _LENGTH, ""),
}

# proto type -> the compiled encoder's number for it (it names its kinds as protobuf does)
COMPILED_KINDS: dict[int, int] = (
    {getattr(_F, f"TYPE_{name.upper()}"): number for number, name in enumerate(_cwire.KINDS)}
    if _cwire is not None
    else {}
)

_VARINT_WRITERS: dict[str, Callable[[int], bytes]] = {
    "VARINT": varint,
    "SIGNED": _signed_varint,
    "ZIGZAG32": _zigzag32,
    "ZIGZAG64": _zigzag64,
}

# The fixed-width writers as struct formats, so that the tag is packed with the value in one call.
# struct refuses a double out of float range (OverflowError): that value goes the slow way.
_FIXED_FORMATS = {
    "FIXED32": "I",
    "FIXED64": "Q",
    "SFIXED32": "i",
    "SFIXED64": "q",
    "DOUBLE": "d",
    "FLOAT": "f",
}

_TAGGED_SMALL: dict[bytes, tuple[bytes, ...]] = {}


def _tagged_small(tag: bytes) -> tuple[bytes, ...]:
    """``tag`` followed by each one-byte varint: a field's tag and a short length or small number
    in one lookup instead of a concatenation. Shared by every field with the same tag."""
    table = _TAGGED_SMALL.get(tag)
    if table is None:
        table = _TAGGED_SMALL[tag] = tuple(tag + small for small in _SMALL)
    return table


def _tag(field: FieldDescriptor) -> bytes:
    """The field's key on the wire: its number and wire type, as a varint."""
    return varint(field.number << 3 | _KINDS[field.type][2])


def _field_lines(index: int, field: FieldDescriptor, namespace: dict[str, Any]) -> list[str]:
    """The lines that write one field, and the constants they use (added to ``namespace``).

    Each field is written with as few intermediate bytes objects as it can: the tag comes packed
    with a fixed-width value, or from a table together with a one-byte length or number; a long
    string or bytes value is joined in, so it is copied once, not twice.
    """
    py_type, bounds, _, writer = _KINDS[field.type]
    check = f"v.__class__ is not {py_type.__name__}"
    if bounds is not None:
        check += f" or not {bounds[0]} <= v < {bounds[1]}"
    lines = [f"    v = obj.{field.name}", f"    if {check}:", "        raise Mismatch"]
    tag_bytes = _tag(field)
    tag, small = f"T{index}", f"S{index}"
    namespace[tag] = tag_bytes
    if py_type is str or py_type is bytes:
        namespace[small] = _tagged_small(tag_bytes)
        lines.append("    if v:")
        if py_type is str:
            lines.append("        v = v.encode()")
        lines += [
            "        n = len(v)",
            "        if n < 128:",
            f"            out += {small}[n] + v",
            "        else:",
            f"            out = JOIN((out, {tag}, varint(n), v))",
        ]
    elif py_type is bool:
        namespace[tag] = tag_bytes + b"\x01"
        lines += ["    if v:", f"        out += {tag}"]
    elif writer in _FIXED_FORMATS:
        pack = f"P{index}"
        namespace[pack] = struct.Struct(f"<{len(tag_bytes)}s{_FIXED_FORMATS[writer]}").pack
        if py_type is float:
            # protobuf writes a float unless all bits of the stored value are zero: -0.0 is written,
            # a double too small for a float field is not (it is stored as 0.0)
            zero = f"Z{index}"
            namespace[zero] = tag_bytes + bytes(8 if writer == "DOUBLE" else 4)
            lines += [f"    v = {pack}({tag}, v)", f"    if v != {zero}:", "        out += v"]
        else:
            lines += ["    if v:", f"        out += {pack}({tag}, v)"]
    elif writer in ("VARINT", "SIGNED"):
        namespace[small] = _tagged_small(tag_bytes)
        in_table = "v < 128" if writer == "VARINT" else "0 <= v < 128"
        lines += ["    if v:", f"        out += {small}[v] if {in_table} else {tag} + {writer}(v)"]
    else:
        lines += ["    if v:", f"        out += {tag} + {writer}(v)"]
    return lines


def wire_encoder(
    plan: MessagePlan, slow: Callable[[Any], bytes], *, compiled: bool = True
) -> Callable[[Any], bytes] | None:
    """The direct encoder for ``plan``'s message, or None when a field is not a plain scalar.

    ``slow`` is the protobuf path: it gets every object the fast code does not take as is.
    ``compiled=False`` gives the generated Python encoder even where the compiled one is built.
    """
    if plan.writers or plan.oneofs or not safe_names(list(plan.plain)):
        return None
    descriptor = plan.descriptor
    if len(plan.plain) != len(descriptor.fields) or descriptor.GetOptions().message_set_wire_format:
        return None
    fields = sorted(descriptor.fields, key=lambda f: f.number)
    if any(
        field.is_repeated
        or field.has_presence
        or field.containing_oneof is not None
        or field.type not in _KINDS
        for field in fields
    ):
        return None
    if compiled and _cwire is not None and len(fields) <= _cwire.FIELD_LIMIT:
        tagged = [(field.name, COMPILED_KINDS[field.type], _tag(field)) for field in fields]
        return _cwire.DirectEncoder(plan.cls, slow, tagged)
    return _generated_encoder(plan, fields, slow)


def _generated_encoder(
    plan: MessagePlan, fields: list[FieldDescriptor], slow: Callable[[Any], bytes]
) -> Callable[[Any], bytes]:
    namespace: dict[str, Any] = {
        "cls": plan.cls,
        "slow": slow,
        "Mismatch": _Mismatch,
        "varint": varint,
        "JOIN": b"".join,
        **_VARINT_WRITERS,
    }
    body: list[str] = []
    for index, field in enumerate(fields):
        body += _field_lines(index, field, namespace)
    # A value the fast code does not take, or anything unexpected (a property that raises, bad
    # UTF-8), goes to the careful path, outside the ``try`` so that its own error propagates.
    source = "\n".join(
        [
            "def encode(obj):",
            "    if obj.__class__ is not cls:",
            "        return slow(obj)",
            "    try:",
            '        out = b""',
            *("    " + line for line in body),
            "        return out",
            "    except Exception:",
            "        pass",
            "    return slow(obj)",
        ]
    )
    encode: Callable[[Any], bytes] = define(source, "encode", namespace, plan)
    return encode
