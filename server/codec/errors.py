"""The three ways a conversion can fail, kept apart because the server treats them apart.

* ``CodecError``: a protobuf message and a dataclass do not fit each other. Raised while
  compiling, i.e. at start-up, so the server refuses to start instead of failing per call.
* ``DecodeError``: bytes from a client are not a valid message, or hold a value the
  dataclass cannot take (an enum number it has no member for). The caller's fault:
  the server answers INVALID_ARGUMENT, and ``field_path`` fits a BadRequest violation.
* ``EncodeError``: a handler produced a value that does not fit the response message.
  The server's fault (INTERNAL); the message names the dataclass field so it is quick to fix.
"""

from __future__ import annotations

from collections.abc import Sequence


def _render(path: Sequence[str]) -> str:
    """``("path", "[2]", "color")`` → ``path[2].color``: the style of a BadRequest field."""
    out = ""
    for segment in path:
        if out and not segment.startswith("["):
            out += "."
        out += segment
    return out


class CodecError(Exception):
    """A message type and a dataclass type are incompatible; ``problems`` says each way how."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(["incompatible protobuf message and dataclass:", *self.problems]))


class DecodeError(ValueError):
    """Request bytes could not become the dataclass.

    ``message_name`` is the full name of the outermost protobuf message, ``field_path`` the
    dotted path of the offending field inside it (empty when protobuf does not say, e.g.
    for corrupt wire data), ``reason`` what is wrong.
    """

    def __init__(self, reason: str, *, message_name: str = "", path: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_name = message_name
        self.path: tuple[str, ...] = tuple(path)

    @property
    def field_path(self) -> str:
        return _render(self.path)

    def __str__(self) -> str:
        where = self.message_name or "message"
        if self.path:
            where += f" field {self.field_path}"
        return f"cannot decode {where}: {self.reason}"


class EncodeError(ValueError):
    """A dataclass value could not become the protobuf message.

    ``class_name`` is the outermost dataclass, ``field_path`` the dotted path of the
    offending field from there, ``proto_field`` the protobuf field it was meant for.
    """

    def __init__(
        self, reason: str, *, class_name: str = "", path: Sequence[str] = (), proto_field: str = ""
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.class_name = class_name
        self.path: tuple[str, ...] = tuple(path)
        self.proto_field = proto_field

    @property
    def field_path(self) -> str:
        return _render(self.path)

    def __str__(self) -> str:
        where = self.class_name or "object"
        if self.path:
            where += f".{self.field_path}"
        target = f" (proto field {self.proto_field})" if self.proto_field else ""
        return f"cannot encode {where}{target}: {self.reason}"
