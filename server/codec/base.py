"""The vocabulary the compile-time modules share: an ``Element`` (how one value converts)
and a ``Mismatch`` (why a type hint does not fit a proto field)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

ToPy = Callable[[Any], Any]
ToPb = Callable[[Any], Any]
Fill = Callable[[Message, Any], None]
# Given a message descriptor and a dataclass: the nested plan's (from_message, fill).
Nested = Callable[[Descriptor, type], tuple[ToPy, Fill]]


class Element(NamedTuple):
    """How one value (not a list or map of them) converts.

    ``to_py``: proto value → Python (None: as is). ``to_pb``: Python → proto scalar (None: as
    is). ``fill``: writes a Python value into a sub-message protobuf hands us, which avoids
    building a message and copying it; set only for message kinds. ``marks_present``: ``fill``
    always assigns a scalar of the sub-message, which already makes it present (saves a
    ``SetInParent`` per value).
    """

    to_py: ToPy | None = None
    to_pb: ToPb | None = None
    fill: Fill | None = None
    marks_present: bool = False


AS_IS = Element()


class Mismatch(NamedTuple):
    """Why a hint does not fit a proto field; ``fix`` overrides the default "annotate as ..."."""

    reason: str
    fix: str | None = None
