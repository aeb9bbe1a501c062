"""A protobuf message ↔ a dataclass: matching fields by name, compiling one plan per pair,
and the start-up check that reports every mismatch in words a person can act on.

Fields match by name; a dataclass attribute ``from_`` also matches a proto field ``from``
(Python keywords). A dataclass field with a default and no proto field is allowed: decode
leaves it at its default, encode ignores it — handy for values a handler computes. A
dataclass field without default and no proto field, or a proto field without dataclass
field, is a problem: data would be lost or invented silently.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from server.codec.base import Fill, Mismatch, ToPy
from server.codec.errors import DecodeError, EncodeError
from server.codec.fields import VALUE_ERRORS, Reader, Writer, compile_field
from server.codec.hints import hint_name, proto_type_name, split_optional, suggest_hint


class MessagePlan:
    """The compiled conversion for one (message descriptor, dataclass) pair.

    ``from_message`` builds the dataclass from a message; ``fill`` writes a dataclass into a
    message. Both copy plain scalars as they are and run each other field's reader or writer;
    a bad value raises with the path of the field that holds it.
    """

    __slots__ = ("cls", "descriptor", "oneofs", "plain", "readers", "writers")

    def __init__(self, descriptor: Descriptor, cls: type) -> None:
        self.descriptor = descriptor
        self.cls = cls
        # Plain scalars (same name, no presence, no conversion) are copied as they are;
        # every other field runs its reader / writer closure.
        self.plain: tuple[str, ...] = ()
        self.readers: tuple[tuple[str, Reader], ...] = ()
        self.writers: tuple[tuple[str, Writer, str], ...] = ()
        self.oneofs: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def from_message(self, message: Message) -> Any:
        kwargs = {name: getattr(message, name) for name in self.plain}
        name = ""
        try:
            for name, read in self.readers:
                kwargs[name] = read(message)
        except DecodeError as error:
            error.path = (name, *error.path)
            error.message_name = self.descriptor.full_name
            raise
        except VALUE_ERRORS as error:
            raise DecodeError(str(error), message_name=self.descriptor.full_name, path=(name,)) from error
        # The dataclass's own __init__/__post_init__ errors propagate unchanged: they are the
        # application's validation, which the server maps like any other domain error.
        return self.cls(**kwargs)

    def fill(self, message: Message, obj: Any) -> None:
        if not isinstance(obj, self.cls):
            raise EncodeError(
                f"expected {self.cls.__name__} for {self.descriptor.full_name}, got {type(obj).__name__}",
                class_name=self.cls.__name__,
            )
        self.check_oneofs(obj)
        name = ""
        proto_field = None
        try:
            for name in self.plain:
                setattr(message, name, getattr(obj, name))
            for name, write, proto_field in self.writers:  # noqa: B007 - read in except
                write(message, getattr(obj, name))
        except EncodeError as error:
            error.path = (name, *error.path)
            error.class_name = self.cls.__name__
            error.proto_field = error.proto_field or proto_field or f"{self.descriptor.full_name}.{name}"
            raise
        except VALUE_ERRORS as error:
            raise EncodeError(
                str(error),
                class_name=self.cls.__name__,
                path=(name,),
                proto_field=proto_field or f"{self.descriptor.full_name}.{name}",
            ) from error

    def check_oneofs(self, obj: Any) -> None:
        for oneof, names in self.oneofs:
            chosen = [name for name in names if getattr(obj, name) is not None]
            if len(chosen) > 1:
                raise EncodeError(
                    f"fields {chosen} are all set, and oneof {oneof} holds at most one",
                    class_name=self.cls.__name__,
                    path=(chosen[0],),
                )


class PlanBuilder:
    """Compiles the plans for one top-level pair and everything nested in it, collecting
    problems instead of stopping at the first, so a start-up error lists them all."""

    def __init__(self, where: str, known: dict[tuple[Descriptor, type], MessagePlan]) -> None:
        self.where = where
        self.known = known
        self.plans: dict[tuple[Descriptor, type], MessagePlan] = {}
        self.problems: list[str] = []

    def plan(self, descriptor: Descriptor, cls: type) -> MessagePlan:
        key = (descriptor, cls)
        found = self.plans.get(key) or self.known.get(key)
        if found is not None:
            return found
        plan = self.plans[key] = MessagePlan(descriptor, cls)  # registered first: recursive types
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            self.problems.append(
                f"{self.where}: {hint_name(cls)} is not a dataclass, so it cannot stand for proto "
                f"message {descriptor.full_name}; make it a dataclass (cqrs.Request/Response are)"
            )
            return plan
        try:
            hints = typing.get_type_hints(cls)
        except Exception as error:  # NameError for a forward reference, and friends
            self.problems.append(
                f"{self.where}: the type hints of {cls.__name__} cannot be resolved ({error!r}); "
                f"import the names they use at module level"
            )
            return plan
        self._compile(plan, hints)
        return plan

    def _nested(self, descriptor: Descriptor, cls: type) -> tuple[ToPy, Fill]:
        plan = self.plan(descriptor, cls)

        # bound methods: they read the plan per call, so a plan still compiling (recursive types) is fine
        return plan.from_message, plan.fill

    def _compile(self, plan: MessagePlan, hints: dict[str, Any]) -> None:
        cls, descriptor = plan.cls, plan.descriptor
        attributes = {f.name: f for f in dataclasses.fields(cls) if f.init}
        plain, readers, writers, matched = [], [], [], set()
        for field in descriptor.fields:
            name = field.name if field.name in attributes else field.name + "_"
            if name not in attributes:
                self.problems.append(
                    f"{self.where}: proto field {field.full_name} ({proto_type_name(field)}) has no "
                    f"counterpart in dataclass {cls.__name__}; add `{field.name}: {suggest_hint(field)}` "
                    f"to {cls.__name__} (or remove the field from the .proto)"
                )
                continue
            matched.add(name)
            compiled = compile_field(field, hints[name], self._nested)
            if isinstance(compiled, Mismatch):
                self.problems.append(self._mismatch(field, cls, name, hints[name], compiled))
                continue
            if compiled.plain and name == field.name:
                plain.append(name)
            else:
                readers.append((name, compiled.read))
                writers.append((name, compiled.write, field.full_name))
        for name, attribute in attributes.items():
            no_default = attribute.default is dataclasses.MISSING
            if name not in matched and no_default and attribute.default_factory is dataclasses.MISSING:
                self.problems.append(
                    f"{self.where}: dataclass field {cls.__name__}.{name} ({hint_name(hints[name])}, no "
                    f"default) has no counterpart in proto message {descriptor.full_name}; add the field "
                    f"to the .proto message or give {cls.__name__}.{name} a default"
                )
        plan.plain, plan.readers, plan.writers = tuple(plain), tuple(readers), tuple(writers)
        plan.oneofs = self._oneofs(descriptor, cls, hints)

    def _mismatch(self, field: FieldDescriptor, cls: type, name: str, hint: Any, mismatch: Mismatch) -> str:
        fix = mismatch.fix or (
            f"annotate {cls.__name__}.{name} as `{suggest_hint(field)}`, or change the .proto field"
        )
        return (
            f"{self.where}: proto field {field.full_name} ({proto_type_name(field)}) does not fit "
            f"dataclass field {cls.__name__}.{name} ({hint_name(hint)}): {mismatch.reason}; {fix}"
        )

    def _oneofs(
        self, descriptor: Descriptor, cls: type, hints: dict[str, Any]
    ) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Real oneofs (not proto3 ``optional``'s synthetic ones) whose members the dataclass has."""
        groups = []
        for oneof in descriptor.oneofs:
            if len(oneof.fields) == 1 and oneof.name == "_" + oneof.fields[0].name:
                continue  # proto3 `optional`: presence only, no choice to check
            names = tuple(n for f in oneof.fields if (n := _attr(f.name, hints)) is not None)
            for member in names:
                if not split_optional(hints[member])[1]:
                    self.problems.append(
                        f"{self.where}: proto field {descriptor.full_name}.{member.rstrip('_')} is in "
                        f"oneof {oneof.name} but dataclass field {cls.__name__}.{member} "
                        f"({hint_name(hints[member])}) cannot be None; annotate it `... | None = None`"
                    )
            groups.append((oneof.name, names))
        return tuple(groups)


def _attr(proto_name: str, hints: dict[str, Any]) -> str | None:
    for name in (proto_name, proto_name + "_"):
        if name in hints:
            return name
    return None
