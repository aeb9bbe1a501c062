"""An adapter for ``dependency-injector`` declarative containers.

A type resolves through the provider that builds it (nested ``providers.Container`` s included), or
else through the first provider building a subclass of it, so handlers may depend on interfaces.
Providers are looked up by their path in the container when resolving, so overrides take effect.
"""

from __future__ import annotations

import inspect
from typing import Any, TypeVar, cast

from dependency_injector import containers, providers

__all__ = ["DependencyInjectorCQRSContainer"]

T = TypeVar("T")


class DependencyInjectorCQRSContainer:
    """Resolves types with an attached ``dependency_injector`` container."""

    def __init__(self) -> None:
        self._external: containers.Container | None = None
        self._paths: dict[type, tuple[str, ...]] = {}

    @property
    def external_container(self) -> containers.Container:
        if self._external is None:
            raise ValueError("External container not attached: call attach_external_container() first")
        return self._external

    def attach_external_container(self, container: containers.Container) -> None:
        """Use ``container`` (replacing any earlier one) and index the classes its providers build."""
        self._external = container
        self._paths = {}
        self._index(container, ())

    def _index(self, container: Any, path: tuple[str, ...]) -> None:
        for name, provider in container.providers.items():
            if isinstance(provider, providers.Container):
                self._index(provider, (*path, name))
                continue
            built = getattr(provider, "cls", None)
            if isinstance(built, type):
                self._paths.setdefault(built, (*path, name))

    def _provider(self, type_: type) -> Any:
        path = self._paths.get(type_)
        if path is None:
            path = next((p for t, p in self._paths.items() if issubclass(t, type_)), None)
        if path is None:
            raise ValueError(
                f"Provider for type {type_.__name__} not found in the attached container "
                f"(nor for any subclass of it)"
            )
        provider: Any = self.external_container
        for name in path:
            provider = getattr(provider, name)
        return provider

    async def resolve(self, type_: type[T]) -> T:
        result = self._provider(type_)()
        if inspect.isawaitable(result):
            result = await result
        return cast(T, result)
