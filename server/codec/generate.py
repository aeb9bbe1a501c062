"""Straight-line conversion functions for a compiled plan: the fast path.

A loop over per-field closures costs noticeably more than a hand-written conversion of a small
message; generated code (the way ``dataclasses`` builds ``__init__``) costs the same as one:

    def from_message(message):
        try:
            v0 = r0(message)                      # closures only where a field converts
        except ERRORS:
            return slow(message)                  # re-runs carefully, raises with the path
        return cls(file_id=message.file_id, status=message.status, processed_at=v0)

The source is built only from dataclass field names and proto field names that are plain
identifiers (checked here, else the careful loop stays in place); values travel through
the function's globals, never through the source text.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from server.codec.errors import DecodeError, EncodeError
from server.codec.fields import VALUE_ERRORS
from server.codec.messages import MessagePlan


def safe_names(names: list[str]) -> bool:
    return all(name.isidentifier() and not keyword.iskeyword(name) for name in names)


def define(source: str, name: str, namespace: dict[str, Any], plan: MessagePlan) -> Any:
    filename = f"<server.codec {plan.descriptor.full_name} <-> {plan.cls.__qualname__}>"
    exec(compile(source, filename, "exec"), namespace)  # identifiers only: see the module doc
    return namespace[name]


def decoder(plan: MessagePlan) -> Callable[[Message], Any] | None:
    names = list(plan.plain) + [name for name, _ in plan.readers]
    if not safe_names(names):
        return None
    namespace: dict[str, Any] = {
        "cls": plan.cls,
        "slow": plan.decode_slowly,
        "ERRORS": (DecodeError, *VALUE_ERRORS),
    }
    lines = ["def from_message(message):"]
    if plan.readers:
        lines.append("    try:")
        for index, (_, read) in enumerate(plan.readers):
            namespace[f"r{index}"] = read
            lines.append(f"        v{index} = r{index}(message)")
        lines += ["    except ERRORS:", "        return slow(message)"]
    arguments = [f"{name}=message.{name}" for name in plan.plain]
    arguments += [f"{name}=v{index}" for index, (name, _) in enumerate(plan.readers)]
    lines.append(f"    return cls({', '.join(arguments)})")
    decode: Callable[[Message], Any] = define("\n".join(lines), "from_message", namespace, plan)
    return decode


def encoder(plan: MessagePlan) -> Callable[[Message, Any], None] | None:
    names = list(plan.plain) + [name for name, _, _ in plan.writers]
    if not safe_names(names):
        return None
    namespace: dict[str, Any] = {
        "cls": plan.cls,
        "slow": plan.fill_slowly,
        "check_oneofs": plan.check_oneofs,
        "ERRORS": (EncodeError, *VALUE_ERRORS),
    }
    lines = [
        "def fill(message, obj):",
        "    if obj.__class__ is not cls and not isinstance(obj, cls):",
        "        return slow(message, obj)",
    ]
    if plan.oneofs:
        lines.append("    check_oneofs(obj)")
    body = [f"        message.{name} = obj.{name}" for name in plan.plain]
    for index, (name, write, _) in enumerate(plan.writers):
        namespace[f"w{index}"] = write
        body.append(f"        w{index}(message, obj.{name})")
    if body:
        # On failure, redo it on a fresh message the careful way: it raises with the path.
        lines += [
            "    try:",
            *body,
            "    except ERRORS:",
            "        slow(type(message)(), obj)",
            "        raise",
        ]
    fill: Callable[[Message, Any], None] = define("\n".join(lines), "fill", namespace, plan)
    return fill


def speed_up(plan: MessagePlan) -> None:
    """Install the generated functions on ``plan`` (keeps the careful ones if names are odd)."""
    plan.from_message = decoder(plan) or plan.decode_slowly
    plan.fill = encoder(plan) or plan.fill_slowly
