"""Classes for the well-known messages the codec maps to dataclasses, shared by every generated module.

Timestamp, Duration, the wrappers and Struct map to Python values (``datetime``, ``int | None``...)
and need no class. ``Empty`` is both a ``cqrs.Request`` and a ``cqrs.Response``, since RPCs take it
and return it alike; the others are plain dataclasses, as they appear inside messages.
"""

from __future__ import annotations

import dataclasses

import cqrs

__all__ = ["Any", "Empty", "FieldMask"]


class Empty(cqrs.Request, cqrs.Response):
    """message google.protobuf.Empty"""


@dataclasses.dataclass(kw_only=True)
class FieldMask:
    """message google.protobuf.FieldMask"""

    paths: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(kw_only=True)
class Any:
    """message google.protobuf.Any"""

    type_url: str = ""
    value: bytes = b""
