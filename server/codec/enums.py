"""Proto enums ↔ Python ``enum.Enum`` members (by name), ``int`` (the number) or ``str`` (the name).

A proto value ``COLOR_RED`` of ``enum Color`` matches the Python member ``RED`` (the
conventional ``COLOR_`` prefix, the upper snake case of the enum's name, stripped) or a
member spelled ``COLOR_RED``; member names are also tried upper-cased. The tables are built
at compile time, so a conversion is one dict lookup.

The zero value (``COLOR_UNSPECIFIED`` by convention) needs no member: for a field annotated
``Color | None`` it becomes ``None`` (and ``None`` encodes as zero); for a plain ``Color``
field decoding it fails, which makes the field required.
"""

from __future__ import annotations

import enum
import re
from typing import Any

from google.protobuf.descriptor import EnumDescriptor

from server.codec.base import AS_IS, Element, Mismatch, ToPy
from server.codec.errors import DecodeError, EncodeError


def enum_prefix(enum_name: str) -> str:
    """``FileStatus`` → ``FILE_STATUS_``, ``HTTPCode`` → ``HTTP_CODE_``."""
    snake = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", enum_name)
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", snake)
    return snake.upper() + "_"


def _proto_value_for(member: str, prefix: str, by_name: dict[str, int]) -> int | None:
    for candidate in (member, prefix + member, member.upper(), prefix + member.upper()):
        if candidate in by_name:
            return by_name[candidate]
    return None


def enum_element(descriptor: EnumDescriptor, hint: Any, *, optional: bool) -> Element | Mismatch:
    """How one value of a proto enum converts to ``hint`` (without its ``| None``)."""
    by_name = {value.name: value.number for value in descriptor.values}
    by_number = {value.number: value.name for value in descriptor.values_by_number.values()}
    full = descriptor.full_name
    if hint is int:
        return AS_IS
    if hint is str:
        prefix = enum_prefix(descriptor.name)
        by_any_name = {**{name.removeprefix(prefix): n for name, n in by_name.items()}, **by_name}
        return Element(
            to_py=_lookup(by_number, DecodeError, f"is not a value of enum {full}"),
            to_pb=_lookup(by_any_name, EncodeError, f"is not a value name of enum {full}"),
        )
    if not (isinstance(hint, type) and issubclass(hint, enum.Enum)):
        return Mismatch(f"enum {full} maps to an enum.Enum subclass, int or str")

    prefix = enum_prefix(descriptor.name)
    to_number: dict[Any, int] = {}
    missing_in_proto = []
    for member in hint:
        number = _proto_value_for(member.name, prefix, by_name)
        if number is None:
            missing_in_proto.append(member.name)
        else:
            to_number[member] = number
    to_member: dict[int, Any] = {number: member for member, number in to_number.items()}
    missing_in_python = [by_number[n] for n in sorted(by_number) if n != 0 and n not in to_member]
    if missing_in_proto or missing_in_python:
        parts = []
        if missing_in_proto:
            parts.append(f"members {missing_in_proto} of {hint.__name__} have no value in enum {full}")
        if missing_in_python:
            parts.append(f"values {missing_in_python} of enum {full} have no member in {hint.__name__}")
        return Mismatch(
            "; ".join(parts),
            fix=f"give each {full} value a {hint.__name__} member named like it, with or without "
            f"the prefix {prefix!r} (the zero value may be left out)",
        )
    if optional and 0 not in to_member:
        to_member[0] = None
        to_number[None] = 0
    return Element(
        to_py=_to_member(to_member, by_number, full, hint.__name__),
        to_pb=_lookup(to_number, EncodeError, f"is not a member of {hint.__name__}"),
    )


def _lookup(table: dict[Any, Any], error: type[DecodeError] | type[EncodeError], what: str) -> ToPy:
    def convert(value: Any) -> Any:
        try:
            return table[value]
        except (KeyError, TypeError):
            raise error(f"{value!r} {what}") from None

    return convert


def _to_member(table: dict[int, Any], names: dict[int, str], full: str, python_name: str) -> ToPy:
    def convert(number: int) -> Any:
        try:
            return table[number]
        except KeyError:
            if number == 0:  # unset, or sent as the zero value: the field is required
                raise DecodeError(
                    f"the field is required: enum {full} value {names.get(0, 0)} (0) has no member "
                    f"in {python_name}"
                ) from None
            raise DecodeError(f"{number} is not a value of enum {full} that {python_name} has") from None

    return convert
