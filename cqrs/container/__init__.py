"""Containers build handlers. The mediator asks for a new handler instance per send/stream (and per
event), because handlers keep per-request state in ``_events``.

Protocol: ``async resolve(type)``; optionally ``open_scope()`` returning an async context manager that
yields a resolver for one send or one whole stream (the python-cqrs ``SupportsScope`` name). The mediator
opens the scope when the send/stream starts and closes it in its ``finally``, so scoped resources (a
database session, a unit of work) live exactly as long as the request.

:class:`Container` is the default: constructor injection by type hints, providers registered as
``"transient"`` (default), ``"singleton"`` or ``"scoped"``; a scoped provider may return an async or sync
context manager, or be an async generator function, and is exited when its scope closes.
"""

from __future__ import annotations

import contextlib
import inspect
import typing
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from cqrs.exceptions import ResolutionError

__all__ = ["Container", "ContainerProtocol", "Lifetime", "Resolver", "SupportsScope", "adapt"]

T = TypeVar("T")
Lifetime = Literal["transient", "singleton", "scoped"]


@runtime_checkable
class Resolver(Protocol):
    """Anything that builds an instance of a type."""

    async def resolve(self, type_: type[T]) -> T: ...


ContainerProtocol = Resolver


@runtime_checkable
class SupportsScope(Protocol):
    """A container that can open a scope for one send or one stream."""

    def open_scope(self) -> AbstractAsyncContextManager[Resolver]: ...


def adapt(container: Any) -> Any:
    """``container``, or an adapter around it when it is a bare ``di.Container`` (python-cqrs users pass
    one as ``di_container=``): see :mod:`cqrs.container.di`. Anything else is used as it is."""
    if type(container).__module__.partition(".")[0] == "di":
        from cqrs.container.di import wrap

        return wrap(container)
    return container


class _Provider:
    __slots__ = ("factory", "lifetime")

    def __init__(self, factory: Callable[..., Any], lifetime: Lifetime) -> None:
        self.factory = factory
        self.lifetime = lifetime


class Container:
    """The default container; handlers need not be registered (they are built by constructor injection).

    >>> container = Container()
    >>> container.register(Clock, SystemClock, lifetime="singleton")
    >>> container.register(Session, open_session, lifetime="scoped")  # async generator / context manager
    """

    def __init__(self) -> None:
        self._providers: dict[type, _Provider] = {}
        self._singletons: dict[type, Any] = {}
        self._plans: dict[type, tuple[tuple[str, type], ...]] = {}

    def register(
        self, type_: type[T], provider: Callable[..., Any] | None = None, *, lifetime: Lifetime = "transient"
    ) -> None:
        """Provide ``type_`` with ``provider`` (a class or callable; its parameters are injected too)."""
        if lifetime not in ("transient", "singleton", "scoped"):
            raise ValueError(f"lifetime must be 'transient', 'singleton' or 'scoped'; got {lifetime!r}")
        factory = provider if provider is not None else type_
        if inspect.isasyncgenfunction(factory):
            factory = contextlib.asynccontextmanager(factory)
        self._providers[type_] = _Provider(factory, lifetime)
        self._singletons.pop(type_, None)

    def register_instance(self, type_: type[T], instance: T) -> None:
        """Always resolve ``type_`` to ``instance``."""
        self._providers[type_] = _Provider(lambda: instance, "singleton")
        self._singletons[type_] = instance

    async def resolve(self, type_: type[T]) -> T:
        """Build ``type_`` outside any scope (scoped types raise :class:`ResolutionError`)."""
        if type_ not in self._providers:
            plan = self._plans.get(type_)
            if plan == ():
                return type_()
        return typing.cast(T, await self._resolve(type_, None))

    def open_scope(self) -> _Scope:
        """A scope for one send or stream; ``async with`` it to get its resolver."""
        return _Scope(self)

    async def _resolve(self, type_: type, scope: _Scope | None) -> Any:
        provider = self._providers.get(type_)
        if provider is None:
            return await self._build(type_, type_, scope)
        if provider.lifetime == "singleton":
            if type_ not in self._singletons:
                self._singletons[type_] = await self._build(provider.factory, type_, scope)
            return self._singletons[type_]
        if provider.lifetime == "scoped":
            if scope is None:
                raise ResolutionError(
                    f"{type_.__qualname__} is registered as scoped and can only be resolved inside a "
                    f"scope (a send or a stream), not directly from the container"
                )
            return await scope._scoped(type_, provider)
        return await self._build(provider.factory, type_, scope)

    async def _build(self, factory: Callable[..., Any], type_: type, scope: _Scope | None) -> Any:
        plan = self._plan(factory, type_)
        if not plan:
            return await _finish(factory())
        kwargs = {name: await self._resolve(dep, scope) for name, dep in plan}
        return await _finish(factory(**kwargs))

    def _plan(self, factory: Callable[..., Any], type_: type) -> tuple[tuple[str, type], ...]:
        if not isinstance(factory, type):
            return _injection_plan(factory)  # provider functions: singletons/scoped are cached anyway
        plan = self._plans.get(factory)
        if plan is None:
            plan = self._plans[factory] = _injection_plan(factory)
        return plan


class _Scope:
    """One send's or one stream's resolver; exits scoped resources in reverse order on close."""

    __slots__ = ("_container", "_instances", "_stack")

    def __init__(self, container: Container) -> None:
        self._container = container
        self._instances: dict[type, Any] = {}
        self._stack: AsyncExitStack | None = None

    async def resolve(self, type_: type[T]) -> T:
        built = self.instant(type_)
        if built is not None:
            return built
        return typing.cast(T, await self._container._resolve(type_, self))

    def instant(self, type_: type[T]) -> T | None:
        """``type_`` built at once if it is a plain class needing no injection (known after its first
        :meth:`resolve`), else None: the event dispatcher resolves a handler per event, and a
        coroutine round trip costs more than building a no-argument class."""
        container = self._container
        if type_ not in container._providers and container._plans.get(type_) == ():
            return type_()
        return None

    async def _scoped(self, type_: type, provider: _Provider) -> Any:
        if type_ in self._instances:
            return self._instances[type_]
        value = await self._container._build(provider.factory, type_, self)
        if hasattr(value, "__aenter__"):
            value = await self._exit_stack().enter_async_context(value)
        elif hasattr(value, "__enter__"):
            value = self._exit_stack().enter_context(value)
        self._instances[type_] = value
        return value

    def _exit_stack(self) -> AsyncExitStack:
        if self._stack is None:
            self._stack = AsyncExitStack()
        return self._stack

    async def __aenter__(self) -> _Scope:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._instances.clear()
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.__aexit__(exc_type, exc, tb)


async def _finish(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _injection_plan(factory: Callable[..., Any]) -> tuple[tuple[str, type], ...]:
    target = factory.__init__ if isinstance(factory, type) else factory  # type: ignore[misc]
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return ()
    plan: list[tuple[str, type]] = []
    hints: dict[str, Any] | None = None
    for name, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.default is not param.empty:
            continue
        if hints is None:
            try:
                hints = typing.get_type_hints(target)
            except Exception as exc:
                raise ResolutionError(f"cannot read the type hints of {_name(factory)}: {exc}") from exc
        hint = hints.get(name)
        if not isinstance(hint, type):
            raise ResolutionError(
                f"cannot build {_name(factory)}: parameter {name!r} needs a class annotation (got {hint!r}) "
                f"or a default, or register a provider for {_name(factory)}"
            )
        plan.append((name, hint))
    return tuple(plan)


def _name(obj: Any) -> str:
    return str(getattr(obj, "__qualname__", repr(obj)))
