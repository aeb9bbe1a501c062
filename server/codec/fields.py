"""One proto field ↔ one dataclass attribute: the reader and writer closures run per call.

Each shape (singular with or without presence, repeated, map) gets its own small closure
so that the per-call work is the conversion itself: no branching on the field's kind at
run time. Error paths are slow on purpose: when a list or map fails, it is converted again
item by item to find the index or key to report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter
from typing import Any, NamedTuple

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from server.codec.base import Element, Mismatch, Nested
from server.codec.elements import element
from server.codec.errors import DecodeError, EncodeError
from server.codec.hints import is_map, mapping_of, message_of, sequence_of, split_optional

Reader = Callable[[Message], Any]
Writer = Callable[[Message, Any], None]


class FieldCode(NamedTuple):
    """A field's compiled reader and writer. ``plain``: a scalar copied as is (no presence,
    no conversion), which the message plan moves in bulk without calling ``read``/``write``."""

    read: Reader
    write: Writer
    plain: bool = False


# Raised by protobuf when a value does not fit (wrong type, out of range, bad UTF-8...).
VALUE_ERRORS = (TypeError, ValueError, OverflowError, AttributeError, KeyError)


def compile_field(field: FieldDescriptor, hint: Any, nested: Nested) -> FieldCode | Mismatch:
    inner, optional = split_optional(hint)
    if is_map(field):
        return _map(field, inner, optional, nested)
    if field.is_repeated:
        if optional:
            return Mismatch("a repeated field is never None (unset is an empty list)")
        item = sequence_of(inner)
        if item is None:
            return Mismatch("the field is repeated and the annotation is not a list")
        converted = element(field, item[0], optional=False, nested=nested)
        if isinstance(converted, Mismatch):
            return converted
        return _repeated(field.name, converted, item[1])
    if sequence_of(inner) is not None and field.type != FieldDescriptor.TYPE_MESSAGE:
        return Mismatch("the annotation is a list and the field is not repeated")
    converted = element(field, inner, optional=optional, nested=nested)
    if isinstance(converted, Mismatch):
        return converted
    if optional and not field.has_presence and field.type != FieldDescriptor.TYPE_ENUM:
        return Mismatch(
            "the proto field has no presence, so it can never be None",
            fix="declare it `optional` in the .proto, or drop `| None` from the annotation",
        )
    if converted.fill is not None:
        return _singular_message(field.name, converted, optional)
    return _singular_scalar(field.name, converted, optional and field.has_presence)


def _singular_scalar(name: str, converted: Element, presence: bool) -> FieldCode:
    to_py, to_pb = converted.to_py, converted.to_pb
    read: Reader
    if presence:

        def read(message: Message) -> Any:
            if not message.HasField(name):
                return None
            value = getattr(message, name)
            return value if to_py is None else to_py(value)

        def write(message: Message, value: Any) -> None:
            if value is not None:
                setattr(message, name, value if to_pb is None else to_pb(value))

        return FieldCode(read, write)

    if to_py is None:
        read = attrgetter(name)
    else:

        def read(message: Message) -> Any:
            return to_py(getattr(message, name))

    if to_pb is None:

        def write(message: Message, value: Any) -> None:
            setattr(message, name, value)

    else:

        def write(message: Message, value: Any) -> None:
            setattr(message, name, to_pb(value))

    return FieldCode(read, write, plain=to_py is None and to_pb is None)


def _singular_message(name: str, converted: Element, optional: bool) -> FieldCode:
    to_py, fill, marks_present = converted.to_py, converted.fill, converted.marks_present
    assert to_py is not None and fill is not None

    def read(message: Message) -> Any:
        if optional and not message.HasField(name):
            return None
        return to_py(getattr(message, name))

    def write(message: Message, value: Any) -> None:
        if value is None and optional:
            return
        sub = getattr(message, name)
        if not marks_present:
            sub.SetInParent()  # present even if filling it assigns nothing (no fields, empty lists)
        fill(sub, value)

    return FieldCode(read, write)


def _check_sequence(value: Any) -> Iterable[Any]:
    if isinstance(value, str | bytes | bytearray | Mapping) or not isinstance(value, Iterable):
        raise EncodeError(f"expected a list, got {type(value).__name__}")
    return value


def _repeated(name: str, converted: Element, container: type) -> FieldCode:
    to_py, to_pb, fill, _ = converted

    def read(message: Message) -> Any:
        items = getattr(message, name)
        try:
            return container(items if to_py is None else map(to_py, items))
        except (DecodeError, *VALUE_ERRORS):
            _locate(enumerate(items), lambda _, item: to_py(item) if to_py else item, DecodeError)
            raise

    if fill is not None:

        def write(message: Message, value: Any) -> None:
            add = getattr(message, name).add
            for index, item in enumerate(_check_sequence(value)):
                try:
                    fill(add(), item)
                except EncodeError as error:
                    error.path = (f"[{index}]", *error.path)
                    raise

    else:

        def write(message: Message, value: Any) -> None:
            items = _check_sequence(value)
            try:
                getattr(message, name).extend(items if to_pb is None else map(to_pb, items))
            except (*VALUE_ERRORS, EncodeError):
                probe = getattr(type(message)(), name)
                _locate(
                    enumerate(items),
                    lambda _, item: probe.append(item if to_pb is None else to_pb(item)),
                    EncodeError,
                )
                raise

    return FieldCode(read, write)


def _map(field: FieldDescriptor, hint: Any, optional: bool, nested: Nested) -> FieldCode | Mismatch:
    if optional:
        return Mismatch("a map field is never None (unset is an empty dict)")
    key_value = mapping_of(hint)
    if key_value is None:
        return Mismatch("the field is a map and the annotation is not a dict")
    entry = message_of(field).fields_by_name
    key = element(entry["key"], key_value[0], optional=False, nested=nested)
    value = element(entry["value"], key_value[1], optional=False, nested=nested)
    for converted in (key, value):
        if isinstance(converted, Mismatch):
            return converted
    assert isinstance(value, Element)
    return _map_closures(field.name, value)


def _map_closures(name: str, converted: Element) -> FieldCode:
    to_py, to_pb, fill, _ = converted

    def read(message: Message) -> Any:
        items = getattr(message, name)
        if to_py is None:
            return dict(items)
        try:
            return {key: to_py(item) for key, item in items.items()}
        except (DecodeError, *VALUE_ERRORS):
            _locate(items.items(), lambda _, item: to_py(item), DecodeError)
            raise

    def write(message: Message, value: Any) -> None:
        if not isinstance(value, Mapping):
            raise EncodeError(f"expected a dict, got {type(value).__name__}")
        target = getattr(message, name)
        if fill is not None:
            for key, item in value.items():
                try:
                    fill(target[key], item)
                except EncodeError as error:
                    error.path = (f"[{key!r}]", *error.path)
                    raise
            return
        try:
            target.update(value if to_pb is None else {key: to_pb(item) for key, item in value.items()})
        except (*VALUE_ERRORS, EncodeError):
            probe = getattr(type(message)(), name)
            _locate(
                value.items(),
                lambda key, item: probe.update({key: item if to_pb is None else to_pb(item)}),
                EncodeError,
            )
            raise

    return FieldCode(read, write)


def _locate(
    items: Iterable[tuple[Any, Any]],
    convert: Callable[[Any, Any], Any],
    wrap: type[DecodeError] | type[EncodeError],
) -> None:
    """Slow path after a list or map failed: convert item by item and raise the first
    failure with its ``[index]`` or ``[key]`` in the path. Returns if none fails again."""
    for key, item in items:
        try:
            convert(key, item)
        except (DecodeError, EncodeError) as error:
            error.path = (f"[{key!r}]", *error.path)
            raise
        except VALUE_ERRORS as error:
            raise wrap(str(error), path=(f"[{key!r}]",)) from error
