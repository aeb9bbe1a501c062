"""The public face: ``Codec`` objects compiled once per (message class, dataclass) pair."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from google.protobuf import message as protobuf_message
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from server import accel
from server.codec.errors import CodecError, DecodeError
from server.codec.messages import MessagePlan, PlanBuilder

T = TypeVar("T")

# Plans that compiled without problems, shared by every pair that nests them.
_PLANS: dict[tuple[Descriptor, type], MessagePlan] = {}
_CODECS: dict[tuple[type[Message], type], Codec[Any]] = {}
_LOCK = threading.Lock()


def _refuse_wire_type_mismatches(
    unknown: UnknownFieldSet, known_fields: dict[int, str], full_name: str
) -> None:
    """Protobuf keeps a known field sent with the wrong wire type as an unknown field and
    decodes the message as if it were absent; that is a client bug (often a message of another
    type sent to this RPC), so it is refused. Truly unknown field numbers stay allowed: they are
    how newer clients talk to older servers. (Top-level fields only.)"""
    for index in range(len(unknown)):
        field = unknown[index]
        name = known_fields.get(field.field_number)
        if name is not None:
            raise DecodeError(
                f"field {field.field_number} ({name}) was sent with wire type {field.wire_type}, "
                "which does not match its declared type",
                message_name=full_name,
                path=(name,),
            )


def check_fields(message_descriptor: Descriptor, dataclass_type: type, *, where: str) -> list[str]:
    """Every way ``dataclass_type`` and the message do not fit, nested messages included.

    Each problem starts with ``where`` (e.g. ``"rpc demo.files.v1.FileService/ProcessFiles
    request"``), names the proto field and the dataclass field, and says what would fix it.
    An empty list means a codec can be compiled for the pair.
    """
    builder = PlanBuilder(where, _PLANS)
    builder.plan(message_descriptor, dataclass_type)
    return builder.problems


class Codec(Generic[T]):
    """Converts between one protobuf message class and one dataclass, both ways.

    Get it from :func:`codec_for` (cached). ``decode``/``encode`` work on wire bytes and fit
    grpc's ``request_deserializer``/``response_serializer`` hooks; ``from_message``/
    ``to_message`` work on message objects. They are plain attributes (closures), so a call
    costs no method binding and no look-up of descriptors or type hints.

    ``encode`` fills a protobuf message and serializes it, unless ``server.accel`` offers a
    compiled encoder for the message (``encodes_directly``; flat messages only), which writes the
    same bytes and hands every value it does not take to ``encode_by_message``, the protobuf path.
    """

    decode: Callable[[bytes], T]
    encode: Callable[[T], bytes]
    from_message: Callable[[Message], T]
    to_message: Callable[[T], Message]

    def __init__(self, message_cls: type[Message], dataclass_type: type[T], plan: MessagePlan) -> None:
        self.message_cls = message_cls
        self.dataclass_type = dataclass_type
        self.plan = plan  # what the conversions were built from
        parse = message_cls.FromString
        from_message = plan.from_message
        fill = plan.fill
        full_name = message_cls.DESCRIPTOR.full_name
        known_fields = {field.number: field.name for field in message_cls.DESCRIPTOR.fields}

        def decode(data: bytes) -> T:
            try:
                message = parse(data)
            except (protobuf_message.DecodeError, TypeError) as error:
                raise DecodeError(f"invalid wire data ({error})", message_name=full_name) from error
            if data:
                unknown = UnknownFieldSet(message)  # the loop runs only if it is not empty
                if unknown:
                    _refuse_wire_type_mismatches(unknown, known_fields, full_name)
            result: T = from_message(message)
            return result

        def to_message(obj: T) -> Message:
            message = message_cls()
            fill(message, obj)
            return message

        def encode_by_message(obj: T) -> bytes:
            message = message_cls()
            fill(message, obj)
            return message.SerializeToString()

        direct = accel.wire_encoder(plan, encode_by_message)
        self.encodes_directly = direct is not None
        self.encode_by_message = encode_by_message
        self.decode = decode
        self.encode = direct or encode_by_message
        self.from_message = from_message
        self.to_message = to_message

    def __repr__(self) -> str:
        return f"Codec({self.message_cls.DESCRIPTOR.full_name} <-> {self.dataclass_type.__qualname__})"


def codec_for(message_cls: type[Message], dataclass_type: type[T], *, where: str = "") -> Codec[T]:
    """The codec for the pair, compiled on first use and the same object ever after.

    Raises :class:`CodecError` listing every problem :func:`check_fields` finds; ``where``
    prefixes them (defaults to ``"<message> <-> <dataclass>"``).
    """
    key = (message_cls, dataclass_type)
    codec = _CODECS.get(key)
    if codec is not None:
        return codec
    with _LOCK:
        codec = _CODECS.get(key)
        if codec is None:
            descriptor: Descriptor = message_cls.DESCRIPTOR  # type: ignore[assignment]  # upb's own class
            builder = PlanBuilder(
                where or f"{descriptor.full_name} <-> {dataclass_type.__qualname__}", _PLANS
            )
            plan = builder.plan(descriptor, dataclass_type)
            if builder.problems:
                raise CodecError(builder.problems)
            _PLANS.update(builder.plans)
            codec = _CODECS[key] = Codec(message_cls, dataclass_type, plan)
    return codec


def compile_decoder(message_cls: type[Message], dataclass_type: type[T]) -> Callable[[bytes], T]:
    """Wire bytes → ``dataclass_type``; raises :class:`DecodeError` for bad input."""
    return codec_for(message_cls, dataclass_type).decode


def compile_encoder(dataclass_type: type[T], message_cls: type[Message]) -> Callable[[T], bytes]:
    """``dataclass_type`` → wire bytes; raises :class:`EncodeError` naming the bad field."""
    return codec_for(message_cls, dataclass_type).encode


def compile_from_message(message_cls: type[Message], dataclass_type: type[T]) -> Callable[[Message], T]:
    """A message object → ``dataclass_type`` (for messages you already hold)."""
    return codec_for(message_cls, dataclass_type).from_message


def compile_to_message(dataclass_type: type[T], message_cls: type[Message]) -> Callable[[T], Message]:
    """``dataclass_type`` → a new message object (e.g. to embed or inspect it)."""
    return codec_for(message_cls, dataclass_type).to_message
