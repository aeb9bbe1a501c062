"""python-cqrs's container protocol: ``resolve`` plus the external container it wraps.

Our mediators need only ``async resolve(type)`` (:class:`~cqrs.container.Resolver`); this richer shape is
what python-cqrs adapters (``DIContainer``, ``DependencyInjectorCQRSContainer``) implement.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from cqrs.container import SupportsScope

__all__ = ["Container", "SupportsScope"]

T = TypeVar("T")
C = TypeVar("C")


class Container(Protocol[C]):
    """Resolves types through an external DI container ``C`` attached after construction."""

    @property
    def external_container(self) -> C: ...

    def attach_external_container(self, container: C) -> None: ...

    async def resolve(self, type_: type[T]) -> T: ...
