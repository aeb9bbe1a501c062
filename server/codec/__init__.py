"""Protobuf messages ↔ dataclasses (``cqrs.Request``/``cqrs.Response``), compiled once per pair.

``codec_for(message_cls, dataclass_type)`` checks the pair, builds one closure per field, and
caches the result; each call then converts with no descriptor or type-hint reflection and no
JSON/dict round trip. ``check_fields`` reports incompatibilities for start-up validation.

Type mapping (dataclass annotation ↔ proto field):

* ``int``/``float``/``bool``/``str``/``bytes`` ↔ the matching scalars (``NewType`` allowed);
* ``enum.Enum`` subclass ↔ proto enum by member name (``COLOR_RED`` ↔ ``RED`` or
  ``COLOR_RED``), or ``int`` (the number), or ``str`` (the value name); see ``enums``;
* ``list[X]`` (``Sequence[X]``, ``tuple[X, ...]``) ↔ ``repeated X``; any non-string iterable
  encodes; ``dict[K, V]`` ↔ ``map<K, V>``;
* a dataclass ↔ a nested message: ``X | None`` is None when unset, plain ``X`` decodes an
  unset field as the message's defaults;
* ``X | None`` ↔ proto3 ``optional`` / oneof members (presence); ``| None`` on an enum
  without presence maps the zero value to None;
* ``datetime`` ↔ ``Timestamp``: decoded aware in UTC (microseconds; nanos truncated);
  **naive datetimes encode as UTC**; ``timedelta`` ↔ ``Duration`` (negative ones too);
* ``X | None`` ↔ wrappers (``StringValue``...); ``dict[str, Any]`` ↔ ``Struct`` (numbers
  come back as float).

A dataclass field with a default and no proto field is allowed (decode leaves the default,
encode ignores it); other one-sided fields are problems.

Encoding fills a protobuf message and serializes it. Where ``server.accel`` offers a compiled
encoder (messages of plain scalar fields only), that writes the same bytes without the message.
"""

from server.codec.compiled import (
    Codec,
    check_fields,
    codec_for,
    compile_decoder,
    compile_encoder,
    compile_from_message,
    compile_to_message,
)
from server.codec.errors import CodecError, DecodeError, EncodeError

__all__ = [
    "Codec",
    "CodecError",
    "DecodeError",
    "EncodeError",
    "check_fields",
    "codec_for",
    "compile_decoder",
    "compile_encoder",
    "compile_from_message",
    "compile_to_message",
]
