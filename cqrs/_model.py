"""The dataclass base shared by requests, responses and events.

A subclass of :class:`Model` becomes a keyword-only dataclass the moment it is defined, so users write
``class ProcessFilesCommand(cqrs.Request): file_ids: list[str]`` with no decorator, fields with defaults
may precede fields without in subclasses, and ``dataclasses.fields()`` / ``typing.get_type_hints()`` see
exactly what was declared (the gRPC codec relies on both).

For python-cqrs users: ``class E(cqrs.DomainEvent, frozen=True)`` is accepted, and a class that declares
``pydantic.Field(...)`` defaults or a ``model_config`` becomes a pydantic dataclass (validated, aliases
honoured); either way it stays a dataclass, so the rest of the package treats it alike.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import sys
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self, dataclass_transform

__all__ = ["Model"]

_HINTS: dict[type, dict[str, Any]] = {}
_T = typing.TypeVar("_T")

# how to convert a value read from dict-shaped data to a type: None when it is taken as is
_Loader = Callable[[Any], Any] | None
_LOADERS: dict[Any, _Loader] = {}
_FIELD_LOADERS: dict[type, list[tuple[str, _Loader]]] = {}
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
# values to_dict() keeps as they are: no dataclass, list or dict inside (subclasses take the slow path)
_AS_IS = frozenset(
    {str, int, float, bool, type(None), bytes, uuid.UUID, decimal.Decimal, datetime.datetime, datetime.date}
)


@dataclass_transform(kw_only_default=True)
class Model:
    """Base of every message class; subclasses are ``dataclass(kw_only=True)`` automatically.

    ``__cqrs_frozen__`` (inherited) makes a whole family frozen, which is how
    :class:`cqrs.DomainEvent` promises immutability.
    """

    __cqrs_frozen__: ClassVar[bool] = False

    def __init_subclass__(cls, _abstract: bool = False, frozen: bool | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # the library's own bases (Request, Event...) stay plain classes so a frozen family can
        # derive from them (dataclasses forbid frozen-from-non-frozen inheritance)
        if _abstract:
            return
        if frozen is None:
            frozen = cls.__cqrs_frozen__
        elif not frozen and cls.__cqrs_frozen__:
            raise TypeError(
                f"{cls.__qualname__}: frozen=False cannot be used here, its base is a frozen family "
                f"(DomainEvent instances are immutable)"
            )
        if _uses_pydantic(cls):
            from pydantic.dataclasses import dataclass as pydantic_dataclass

            pydantic_dataclass(cls, kw_only=True, frozen=frozen, config=cls.__dict__.get("model_config"))
        else:
            dataclasses.dataclass(cls, kw_only=True, frozen=frozen)

    def to_dict(self) -> dict[str, Any]:
        """A plain ``dict`` of the fields; nested dataclasses, lists, tuples and dicts are converted too."""
        return {name: _dump(getattr(self, name)) for name in _field_names(type(self))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build an instance from :meth:`to_dict`-shaped data, converting nested values by the type hints.

        Unknown keys are ignored, so a newer producer does not break an older consumer.
        """
        return _construct(cls, data)


def _uses_pydantic(cls: type) -> bool:
    """True when ``cls`` (or a base) declares pydantic fields or a ``model_config``.

    Such a class must be built by pydantic: as a plain dataclass a ``pydantic.Field(...)`` default would
    become the field's value and an alias would be unknown.
    """
    fields = sys.modules.get("pydantic.fields")  # no pydantic field exists before this is imported
    field_info = fields.FieldInfo if fields is not None else ()
    for klass in cls.__mro__:
        if "__pydantic_fields__" in klass.__dict__ and klass is not cls:
            return True
        if "model_config" in klass.__dict__:
            return True
        if field_info and any(isinstance(v, field_info) for v in vars(klass).values()):
            return True
    return False


def _hints(cls: type) -> dict[str, Any]:
    """Type hints with type variables bound by generic bases substituted (``NotificationEvent[P]``)."""
    hints = _HINTS.get(cls)
    if hints is None:
        bound = _bound_typevars(cls)
        raw = typing.get_type_hints(cls)
        hints = _HINTS[cls] = {k: _substitute(v, bound) for k, v in raw.items()} if bound else raw
    return hints


def _bound_typevars(cls: type) -> dict[Any, Any]:
    bound: dict[Any, Any] = {}
    for klass in reversed(cls.__mro__):
        for base in getattr(klass, "__orig_bases__", ()):
            origin = typing.get_origin(base)
            params = getattr(origin, "__parameters__", ())
            for param, arg in zip(params, typing.get_args(base), strict=False):
                bound[param] = _substitute(arg, bound)
    return bound


def _substitute(tp: Any, bound: dict[Any, Any]) -> Any:
    if isinstance(tp, typing.TypeVar):
        return bound.get(tp, Any)
    args = typing.get_args(tp)
    if not args:
        return tp
    new = tuple(_substitute(a, bound) for a in args)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return typing.Union[new]  # noqa: UP007 - built from a runtime tuple
    try:
        return origin[new] if origin is not None else tp
    except TypeError:
        return tp


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _dump(value: Any) -> Any:
    if type(value) in _AS_IS:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _dump(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _loaders(cls: type) -> list[tuple[str, _Loader]]:
    """``(field name, loader)`` for each init field of ``cls``, worked out once per class."""
    loaders = _FIELD_LOADERS.get(cls)
    if loaders is None:
        hints = _hints(cls)
        fields = dataclasses.fields(cls)
        loaders = _FIELD_LOADERS[cls] = [(f.name, _loader(hints.get(f.name, Any))) for f in fields if f.init]
    return loaders


def _loader(tp: Any) -> _Loader:
    """The converter of values of type ``tp`` (None: as is), worked out once per type.

    A converter takes None as None, and a value whose shape does not match ``tp`` (a str where a
    nested message is expected, say) as is, for the dataclass to judge."""
    try:
        return _LOADERS[tp]
    except KeyError:
        load = _LOADERS[tp] = _make_loader(tp)
    except TypeError:  # an unhashable annotation: work it out each time
        return _make_loader(tp)
    return load


def _make_loader(tp: Any) -> _Loader:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return _loader(options[0]) if len(options) == 1 else None
    if origin in (list, set, frozenset, tuple) or tp in (list, set, frozenset, tuple):
        args = typing.get_args(tp)
        item = _loader(args[0] if args else Any)
        container = origin or tp
        if item is None:
            return lambda value: None if value is None else container(value)
        return lambda value: None if value is None else container(item(v) for v in value)
    if origin is dict or tp is dict:
        args = typing.get_args(tp)
        each = _loader(args[1] if len(args) == 2 else Any)
        if each is None:
            return lambda value: None if value is None else dict(value)
        return lambda value: None if value is None else {k: each(v) for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Model):
        model = tp
        return lambda value: model.from_dict(value) if isinstance(value, Mapping) else value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        plain = tp
        return lambda value: _construct(plain, value) if isinstance(value, Mapping) else value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        kind = tp
        return lambda value: value if value is None or isinstance(value, kind) else kind(value)
    from_text = _FROM_TEXT.get(tp) if isinstance(tp, type) else None
    if from_text is not None:  # JSON-shaped data (an event read from a bus)
        parse = from_text
        return lambda value: parse(value) if isinstance(value, str) else value
    validate = getattr(tp, "model_validate", None)  # a pydantic model, e.g. a NotificationEvent payload
    if callable(validate):
        return lambda value: validate(value) if isinstance(value, Mapping) else value
    return None


def _construct(cls: type[_T], data: Mapping[str, Any]) -> _T:
    """``cls`` built from the init fields ``data`` holds, each value through its loader."""
    kwargs = {}
    for name, load in _loaders(cls):
        if name in data:
            kwargs[name] = data[name] if load is None else load(data[name])
    return cls(**kwargs)


_FROM_TEXT: dict[Any, Callable[[str], Any]] = {
    datetime.datetime: datetime.datetime.fromisoformat,
    datetime.date: datetime.date.fromisoformat,
    uuid.UUID: uuid.UUID,
    decimal.Decimal: decimal.Decimal,
}
