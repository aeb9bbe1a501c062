# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled direct wire encoder: a flat message's wire bytes written without a protobuf message.

It writes only values it can write exactly as protobuf does (the exact Python type of the field,
inside the field's range) and hands the object to ``slow`` (the protobuf path, which accepts or
refuses and names the field) for anything else, an attribute that raises included. Output is
byte-for-byte protobuf's: fields in number order, proto3 zero values left out, negative int32/int64
as ten-byte varints, ``-0.0`` written. Every field is read before any is checked, so an object that
goes to ``slow`` has its getters run twice. A non-ASCII string is encoded into a temporary copy (its
cached UTF-8 form would live as long as the string).

``KINDS`` names the field kinds in the order of their numbers here; ``server.accel.wire`` maps proto
types to them by name. Why it exists: docs/accel.md.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.math cimport isinf
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy


cdef extern from "Python.h":
    bint PyLong_CheckExact(object)
    bint PyFloat_CheckExact(object)
    bint PyBytes_CheckExact(object)
    bint PyUnicode_CheckExact(object)
    bint PyUnicode_IS_COMPACT_ASCII(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    const char* PyUnicode_AsUTF8AndSize(object, Py_ssize_t*) except NULL
    bytes PyUnicode_AsUTF8String(object)
    long long PyLong_AsLongLongAndOverflow(object, int*) except? -1
    unsigned long long PyLong_AsUnsignedLongLong(object) except? -1
    double PyFloat_AS_DOUBLE(object)


# Field kinds (see the module doc).
cdef enum:
    INT32 = 0
    INT64 = 1
    UINT32 = 2
    UINT64 = 3
    SINT32 = 4
    SINT64 = 5
    FIXED32 = 6
    FIXED64 = 7
    SFIXED32 = 8
    SFIXED64 = 9
    DOUBLE = 10
    FLOAT = 11
    BOOL = 12
    STRING = 13
    BYTES = 14

# Per call, each field's state lives on the C stack: bigger messages go through protobuf.
cdef enum:
    MAX_FIELDS = 64

# How a field's value goes on the wire, found in the first pass.
cdef enum:
    SKIP = 0  # the proto3 zero value: not written
    AS_VARINT = 1
    AS_FIXED32 = 2
    AS_FIXED64 = 3
    AS_LENGTH = 4  # a string or bytes: length, then the bytes at ``data``

KINDS = (
    "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32",
    "sfixed64", "double", "float", "bool", "string", "bytes",
)
assert len(KINDS) == BYTES + 1
FIELD_LIMIT = MAX_FIELDS


cdef inline int varint_size(uint64_t value) noexcept:
    cdef int size = 1
    while value > 127:
        value >>= 7
        size += 1
    return size


cdef inline uint8_t* put_varint(uint8_t* out, uint64_t value) noexcept:
    while value > 127:
        out[0] = <uint8_t>((value & 127) | 128)
        out += 1
        value >>= 7
    out[0] = <uint8_t>value
    return out + 1


cdef inline uint8_t* put_little_endian(uint8_t* out, uint64_t value, int width) noexcept:
    cdef int shift
    for shift in range(width):
        out[shift] = <uint8_t>(value >> (8 * shift))
    return out + width


@cython.final
cdef class DirectEncoder:
    """``encoder(obj) -> bytes`` for one message of plain scalar fields.

    ``fields`` are ``(attribute name, kind, tag bytes)`` in field-number order; ``cls`` the exact class
    it takes; ``slow(obj)`` the protobuf path for everything else.
    """

    cdef object cls
    cdef object slow
    cdef tuple names
    cdef Py_ssize_t count
    cdef int kinds[MAX_FIELDS]
    cdef uint8_t tags[MAX_FIELDS][5]
    cdef int tag_sizes[MAX_FIELDS]

    def __init__(self, cls, slow, fields):
        # once only: the encoding pass trusts ``count`` to match ``names`` and the per-field arrays
        if self.names is not None:
            raise TypeError("a DirectEncoder is initialised once")
        fields = tuple(fields)
        if len(fields) > MAX_FIELDS:
            raise ValueError(f"at most {MAX_FIELDS} fields, got {len(fields)}")
        cdef Py_ssize_t index
        # a refused field leaves ``count`` at 0 and ``names`` unset, so arrays half filled are never read
        for index, (name, kind, tag) in enumerate(fields):
            if not 0 <= kind <= BYTES or not 1 <= len(tag) <= 5:
                raise ValueError(f"field {name!r}: kind {kind} or tag {tag!r} is not one this encoder writes")
            self.kinds[index] = kind
            self.tag_sizes[index] = len(tag)
            memcpy(self.tags[index], <const char*>tag, len(tag))
        self.cls = cls
        self.slow = slow
        self.count = len(fields)
        self.names = tuple(name for name, _, _ in fields)

    def __call__(self, obj):
        if type(obj) is not self.cls:
            return self.slow(obj)
        try:
            encoded = self._encode(obj)
        except Exception:  # an attribute that raises, a string that is not UTF-8: the careful path says
            encoded = None
        if encoded is None:
            return self.slow(obj)
        return encoded

    cdef object _encode(self, obj):
        """The wire bytes, or None for a value the fast path does not take as it is."""
        cdef int ways[MAX_FIELDS]
        cdef uint64_t numbers[MAX_FIELDS]
        cdef const char* data[MAX_FIELDS]
        cdef Py_ssize_t total = 0
        cdef Py_ssize_t index, length
        cdef int kind, overflow
        cdef long long signed_value
        cdef uint64_t unsigned_value
        cdef double double_value
        cdef float float_value
        cdef uint32_t float_bits
        # the values stay referenced here until their bytes are copied
        values = [getattr(obj, name) for name in self.names]
        for index in range(self.count):
            value = values[index]
            kind = self.kinds[index]
            ways[index] = SKIP
            if kind <= SFIXED64:
                if not PyLong_CheckExact(value):
                    return None
                if kind == UINT32 or kind == UINT64 or kind == FIXED32 or kind == FIXED64:
                    unsigned_value = PyLong_AsUnsignedLongLong(value)  # OverflowError if negative or past 64 bits
                    if (kind == UINT32 or kind == FIXED32) and unsigned_value > 0xFFFFFFFF:
                        return None
                else:
                    signed_value = PyLong_AsLongLongAndOverflow(value, &overflow)
                    if overflow:
                        return None
                    if (kind == INT32 or kind == SINT32 or kind == SFIXED32) and not (
                        -2147483648 <= signed_value <= 2147483647
                    ):
                        return None
                    # zigzag without shifting a negative number: all ones when negative
                    if kind == SINT32:
                        unsigned_value = (<uint32_t>signed_value << 1) ^ (<uint32_t>0 - <uint32_t>(signed_value < 0))
                    elif kind == SINT64:
                        unsigned_value = (<uint64_t>signed_value << 1) ^ (<uint64_t>0 - <uint64_t>(signed_value < 0))
                    elif kind == SFIXED32:
                        unsigned_value = <uint32_t>signed_value
                    else:  # int32 and int64 sign-extend to 64 bits; sfixed64 as it is
                        unsigned_value = <uint64_t>signed_value
                if unsigned_value == 0:
                    continue
                numbers[index] = unsigned_value
                if kind == FIXED32 or kind == SFIXED32:
                    ways[index] = AS_FIXED32
                    total += 4
                elif kind == FIXED64 or kind == SFIXED64:
                    ways[index] = AS_FIXED64
                    total += 8
                else:
                    ways[index] = AS_VARINT
                    total += varint_size(unsigned_value)
            elif kind == DOUBLE:
                if not PyFloat_CheckExact(value):
                    return None
                double_value = PyFloat_AS_DOUBLE(value)
                memcpy(&unsigned_value, &double_value, 8)
                if unsigned_value == 0:  # +0.0 only: -0.0 is written
                    continue
                numbers[index] = unsigned_value
                ways[index] = AS_FIXED64
                total += 8
            elif kind == FLOAT:
                if not PyFloat_CheckExact(value):
                    return None
                double_value = PyFloat_AS_DOUBLE(value)
                float_value = <float>double_value  # IEEE rounding, inf past the range: PyFloat_Pack4's cast
                if isinf(float_value) and not isinf(double_value):
                    return None  # out of float range: protobuf decides
                memcpy(&float_bits, &float_value, 4)
                if float_bits == 0:
                    continue
                numbers[index] = float_bits
                ways[index] = AS_FIXED32
                total += 4
            elif kind == BOOL:
                if value is True:
                    numbers[index] = 1
                    ways[index] = AS_VARINT
                    total += 1
                elif value is not False:
                    return None
                else:
                    continue
            elif kind == STRING:
                if not PyUnicode_CheckExact(value):
                    return None
                if PyUnicode_GET_LENGTH(value) == 0:
                    continue
                if not PyUnicode_IS_COMPACT_ASCII(value):
                    value = PyUnicode_AsUTF8String(value)  # raises for a lone surrogate
                    values[index] = value  # kept until copied
                    data[index] = PyBytes_AS_STRING(value)
                    length = PyBytes_GET_SIZE(value)
                else:  # ASCII is its own UTF-8: no copy
                    data[index] = PyUnicode_AsUTF8AndSize(value, &length)
                numbers[index] = <uint64_t>length
                ways[index] = AS_LENGTH
                total += varint_size(<uint64_t>length) + length
            else:  # BYTES
                if not PyBytes_CheckExact(value):
                    return None
                length = PyBytes_GET_SIZE(value)
                if length == 0:
                    continue
                data[index] = PyBytes_AS_STRING(value)
                numbers[index] = <uint64_t>length
                ways[index] = AS_LENGTH
                total += varint_size(<uint64_t>length) + length
            total += self.tag_sizes[index]
        out = PyBytes_FromStringAndSize(NULL, total)
        cdef uint8_t* cursor = <uint8_t*>PyBytes_AS_STRING(out)
        for index in range(self.count):
            if ways[index] == SKIP:
                continue
            memcpy(cursor, self.tags[index], self.tag_sizes[index])
            cursor += self.tag_sizes[index]
            if ways[index] == AS_VARINT:
                cursor = put_varint(cursor, numbers[index])
            elif ways[index] == AS_FIXED64:
                cursor = put_little_endian(cursor, numbers[index], 8)
            elif ways[index] == AS_FIXED32:
                cursor = put_little_endian(cursor, numbers[index], 4)
            else:
                cursor = put_varint(cursor, numbers[index])
                memcpy(cursor, data[index], <size_t>numbers[index])
                cursor += numbers[index]
        return out
