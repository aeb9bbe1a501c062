"""One .proto file → the source of its ``*_cqrs.py`` module: a dataclass per message, an IntEnum per enum.

The types follow the codec's mapping (``server.codec``), so every generated class passes
``check_fields`` against its message. Nested messages and enums are nested classes. Field annotations
are strings (``from __future__ import annotations``) naming classes by their qualified path
(``Outer.Inner``), resolved from the module's globals when the codec reads them; only enum defaults are
evaluated as a class is made, so a nested enum's default is made by a factory unless the field belongs
to the message that declares the enum.
"""

from __future__ import annotations

import keyword

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, FileDescriptor

from server.codec.enums import enum_prefix
from server.codec.hints import enum_of, is_map, message_of, python_scalar

_T = FieldDescriptor
# Well-known messages the codec maps to Python values (``| None`` when singular: they have presence).
_VALUES = {
    "google.protobuf.Timestamp": "_datetime.datetime",
    "google.protobuf.Duration": "_datetime.timedelta",
    "google.protobuf.DoubleValue": "float",
    "google.protobuf.FloatValue": "float",
    "google.protobuf.Int64Value": "int",
    "google.protobuf.UInt64Value": "int",
    "google.protobuf.Int32Value": "int",
    "google.protobuf.UInt32Value": "int",
    "google.protobuf.BoolValue": "bool",
    "google.protobuf.StringValue": "str",
    "google.protobuf.BytesValue": "bytes",
    "google.protobuf.Struct": "dict",  # dict[str, Any]
}
# Well-known messages the codec maps to a dataclass: the classes in server.protoc_gen.wkt.
_WKT_CLASSES = {"google.protobuf.Empty", "google.protobuf.FieldMask", "google.protobuf.Any"}
_SCALAR_DEFAULTS = {int: "0", float: "0.0", bool: "False", str: '""', bytes: 'b""'}
# names a field cannot take as they are (the codec also matches the proto field `from` to `from_`)
_RESERVED_FIELDS = frozenset({"to_dict", "from_dict"})
# builtins the annotations use: a field of one of these names (`repeated Item list`) would shadow it
# in its class body, so that class spells them `_builtins.list`
_BUILTINS = frozenset({"int", "float", "bool", "str", "bytes", "list", "dict"})


class GenerationError(Exception):
    """A .proto the generator cannot map; the message names the element and why."""


def module_name(proto_name: str) -> str:
    """``demo/files/v1/files.proto`` → ``demo.files.v1.files_cqrs`` (beside ``files_pb2``)."""
    return proto_name.removesuffix(".proto").replace("-", "_").replace("/", ".") + "_cqrs"


def file_name(proto_name: str) -> str:
    return module_name(proto_name).replace(".", "/") + ".py"


def field_attribute(field: FieldDescriptor) -> str:
    """The dataclass attribute for a proto field: its name, or ``name_`` for a Python keyword."""
    name = field.name
    return name + "_" if keyword.iskeyword(name) or name in _RESERVED_FIELDS else name


def enum_members(descriptor: EnumDescriptor) -> list[tuple[str, int]]:
    """``(member, number)`` pairs: ``COLOR_RED`` becomes ``RED`` when every value has the prefix."""
    prefix = enum_prefix(descriptor.name)
    names = [value.name for value in descriptor.values]
    stripped = [name.removeprefix(prefix) for name in names]
    if all(name.startswith(prefix) for name in names) and all(map(_usable_member, stripped)):
        names = stripped
    for name in names:
        if not _usable_member(name):
            raise GenerationError(
                f"enum {descriptor.full_name}: value {name} cannot be a Python enum member name; rename it"
            )
    return [(name, value.number) for name, value in zip(names, descriptor.values, strict=True)]


def _usable_member(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")


class FileRenderer:
    """Renders one file; ``inputs``/``outputs`` are the full names of messages RPCs take and return."""

    def __init__(self, file: FileDescriptor, inputs: set[str], outputs: set[str]) -> None:
        self.file = file
        self.inputs = inputs
        self.outputs = outputs
        self.imports: set[str] = set()  # standard library
        self.project_imports: set[str] = set()  # cqrs, server and other generated modules
        self.modules: dict[str, str] = {}  # proto file name -> alias of its generated module
        self.top_names = set(file.message_types_by_name) | set(file.enum_types_by_name)
        self.shadowed: frozenset[str] = frozenset()  # builtins the class being rendered shadows

    def render(self) -> str:
        body: list[str] = []
        for descriptor in self.file.enum_types_by_name.values():
            body += ["", "", *self._enum(descriptor)]
        for message in self.file.message_types_by_name.values():
            body += ["", "", *self._message(message)]
        public = ", ".join(
            f'"{name}"' for name in [*self.file.message_types_by_name, *self.file.enum_types_by_name]
        )
        imports = [sorted(self.imports), sorted(self.project_imports, key=lambda line: line.split()[1])]
        head = [
            f"# Generated by protoc-gen-cqrs from {self.file.name}. DO NOT EDIT.",
            f'"""cqrs dataclasses for the messages of {self.file.name} (package {self.file.package})."""',
            "",
            "from __future__ import annotations",
            *(line for group in imports if group for line in ["", *group]),
            "",
            f"__all__ = [{public}]",
        ]
        return "\n".join([*head, *body, ""])

    # --- enums ----------------------------------------------------------------------------

    def _enum(self, descriptor: EnumDescriptor, indent: str = "") -> list[str]:
        self.imports.add("import enum as _enum")
        lines = [
            f"{indent}class {descriptor.name}(_enum.IntEnum):",
            f'{indent}    """enum {descriptor.full_name}"""',
            "",
        ]
        return lines + [f"{indent}    {member} = {number}" for member, number in enum_members(descriptor)]

    # --- messages -------------------------------------------------------------------------

    def _message(self, descriptor: Descriptor, indent: str = "") -> list[str]:
        if keyword.iskeyword(descriptor.name):
            raise GenerationError(f"message {descriptor.full_name} is named like a Python keyword; rename it")
        usage = (descriptor.full_name in self.inputs, descriptor.full_name in self.outputs)
        bases = {
            (True, True): "(_cqrs.Request, _cqrs.Response)",
            (True, False): "(_cqrs.Request)",
            (False, True): "(_cqrs.Response)",
        }.get(usage)
        lines = []
        if bases is not None:
            self.project_imports.add("import cqrs as _cqrs")
        else:  # used only inside other messages: a plain dataclass is all the codec needs
            self.imports.add("import dataclasses as _dataclasses")
            lines.append(f"{indent}@_dataclasses.dataclass(kw_only=True)")
        lines += [
            f"{indent}class {descriptor.name}{bases or ''}:",
            f'{indent}    """message {descriptor.full_name}"""',
        ]
        inner = indent + "    "
        for nested_enum in descriptor.enum_types:
            lines += ["", *self._enum(nested_enum, inner)]
        for nested in descriptor.nested_types:
            if not nested.GetOptions().map_entry:
                lines += ["", *self._message(nested, inner)]
        if descriptor.fields:
            lines.append("")
        attributes = [field_attribute(field) for field in descriptor.fields]
        for field, attribute in zip(descriptor.fields, attributes, strict=True):
            if attribute.startswith("__") or attributes.count(attribute) > 1:
                raise GenerationError(f"field {field.full_name} cannot be the Python attribute {attribute}")
        self.shadowed = _BUILTINS.intersection(attributes)
        if self.shadowed:
            self.imports.add("import builtins as _builtins")
        for field, attribute in zip(descriptor.fields, attributes, strict=True):
            hint, default = self._field(field)
            lines.append(f"{inner}{attribute}: {hint} = {default}")
        return lines

    def _builtin(self, name: str) -> str:
        return f"_builtins.{name}" if name in self.shadowed else name

    def _field(self, field: FieldDescriptor) -> tuple[str, str]:
        """The annotation and default of one field (every field has a default, as in proto3)."""
        if is_map(field):
            entry = message_of(field).fields_by_name
            self.imports.add("import dataclasses as _dataclasses")
            key, value = self._element(entry["key"])[0], self._element(entry["value"])[0]
            return (
                f"{self._builtin('dict')}[{key}, {value}]",
                f"_dataclasses.field(default_factory={self._builtin('dict')})",
            )
        element, default = self._element(field)
        if field.is_repeated:
            self.imports.add("import dataclasses as _dataclasses")
            return (
                f"{self._builtin('list')}[{element}]",
                f"_dataclasses.field(default_factory={self._builtin('list')})",
            )
        if field.has_presence:  # proto3 `optional`, oneof members, message fields
            return f"{element} | None", "None"
        return element, default

    def _element(self, field: FieldDescriptor) -> tuple[str, str]:
        """One value's type, and its default as a singular field without presence (messages have it)."""
        if field.type == _T.TYPE_ENUM:
            return self._enum_element(enum_of(field), field)
        if field.type in (_T.TYPE_MESSAGE, _T.TYPE_GROUP):
            message = message_of(field)
            known = _VALUES.get(message.full_name)
            if known == "dict":
                self.imports.add("import typing as _typing")
                return f"{self._builtin('dict')}[{self._builtin('str')}, _typing.Any]", "None"
            if known is not None:
                if known.startswith("_datetime."):
                    self.imports.add("import datetime as _datetime")
                return self._builtin(known), "None"
            return self._message_reference(message, field), "None"
        scalar = python_scalar(field)
        assert scalar is not None, field.full_name
        return self._builtin(scalar.__name__), _SCALAR_DEFAULTS[scalar]

    def _enum_element(self, descriptor: EnumDescriptor, field: FieldDescriptor) -> tuple[str, str]:
        zero = enum_members(descriptor)[0][0]  # proto3: the first value is 0, and unset reads as it
        if descriptor.file.name != self.file.name:
            reference = f"{self._module(descriptor.file)}.{_python_path(descriptor)}"
            return reference, f"{reference}.{zero}"
        reference = _python_path(descriptor)
        owner = descriptor.containing_type
        if owner is None:  # top-level enums are defined before every message
            return reference, f"{reference}.{zero}"
        holder = field.containing_type
        if holder is not None and owner.full_name == holder.full_name:  # declared in the body being run
            return reference, f"{descriptor.name}.{zero}"
        self.imports.add("import dataclasses as _dataclasses")
        return reference, f"_dataclasses.field(default_factory=lambda: {reference}.{zero})"

    def _message_reference(self, message: Descriptor, field: FieldDescriptor) -> str:
        if message.file.name == self.file.name:
            return _python_path(message)
        if message.full_name in _WKT_CLASSES:
            self.project_imports.add("from server.protoc_gen import wkt as _wkt")
            return f"_wkt.{message.name}"
        if message.file.package == "google.protobuf":
            raise GenerationError(
                f"field {field.full_name}: {message.full_name} has no generated class; "
                "write this message's class by hand"
            )
        return f"{self._module(message.file)}.{_python_path(message)}"

    def _module(self, file: FileDescriptor) -> str:
        alias = self.modules.get(file.name)
        if alias is None:
            full = module_name(file.name)
            package, _, name = full.rpartition(".")
            alias = "_" + full.replace(".", "_")
            while alias in self.top_names:
                alias += "_"
            self.top_names.add(alias)
            self.modules[file.name] = alias
            line = f"from {package} import {name} as {alias}" if package else f"import {name} as {alias}"
            self.project_imports.add(line)
        return alias


def _python_path(descriptor: Descriptor | EnumDescriptor) -> str:
    """``Outer.Inner`` for ``pkg.Outer.Inner``: the qualified name inside the generated module."""
    package = descriptor.file.package
    return descriptor.full_name.removeprefix(package + ".") if package else descriptor.full_name
