"""An adapter for the ``di`` package: ``DIContainer().attach_external_container(di.Container())``.

Bootstrap functions wrap a bare ``di.Container`` in it themselves. Each send or stream opens one ``di``
scope (``"request"`` by default), so request-scoped dependencies live exactly as long as it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypeVar, cast

import di
from di import executors
from di.dependent import Dependent

__all__ = ["DIContainer", "wrap"]

T = TypeVar("T")


class DIContainer:
    """Resolves handlers (and their type-hinted dependencies) with a ``di.Container``."""

    def __init__(self, scope: Any = "request") -> None:
        self._scope = scope
        self._external: di.Container | None = None
        self._solved: dict[type, Any] = {}
        self._state: Any = None

    @property
    def external_container(self) -> di.Container:
        if self._external is None:
            raise ValueError("External container not attached: call attach_external_container() first")
        return self._external

    def attach_external_container(self, container: di.Container) -> None:
        self._external = container
        self._solved.clear()

    @contextlib.asynccontextmanager
    async def open_scope(self) -> AsyncIterator[DIContainer]:
        """One ``di`` scope for one send or stream; generator dependencies are closed when it ends."""
        async with self.external_container.enter_scope(self._scope) as state:
            scoped = DIContainer(self._scope)
            scoped._external, scoped._solved, scoped._state = self._external, self._solved, state
            yield scoped

    async def resolve(self, type_: type[T]) -> T:
        solved = self._solved.get(type_)
        if solved is None:
            solved = self._solved[type_] = self.external_container.solve(
                Dependent(type_, scope=self._scope), scopes=[self._scope]
            )
        executor = executors.AsyncExecutor()
        if self._state is not None:
            return cast(T, await solved.execute_async(executor=executor, state=self._state))
        async with self.external_container.enter_scope(self._scope) as state:
            return cast(T, await solved.execute_async(executor=executor, state=state))


def wrap(container: object) -> object:
    """``container`` itself, or a :class:`DIContainer` around it when it is a bare ``di.Container``."""
    if isinstance(container, di.Container):
        wrapped = DIContainer()
        wrapped.attach_external_container(container)
        return wrapped
    return container
