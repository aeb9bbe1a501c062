"""The hooks through which a host watches event handlers and the bus; none are installed by default.

``cqrs`` imports no tracing or metrics library. A host (the gRPC server's ``server.telemetry``) installs
an :class:`Observer` with :func:`install`; each hook site reads :data:`observer` once per dispatch or bus
message, so while none is installed nothing more runs there.
"""

from __future__ import annotations

from collections.abc import Awaitable, MutableMapping
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

__all__ = ["Observer", "consumed", "install", "observer"]

T = TypeVar("T")


class Observer(Protocol):
    """What a host is told; each method wraps one unit of work and sees its exception, if any."""

    def handling(self, handler_type: type[Any], event: object) -> AbstractContextManager[None]:
        """Wraps one event handler's ``handle(event)``."""
        ...

    async def publish(self, message_name: str, headers: MutableMapping[str, str], work: Awaitable[T]) -> T:
        """Awaits ``work``, the storing of one bus message; may add headers (trace context) first."""
        ...

    async def consume(self, group: str, message: Any, work: Awaitable[T]) -> T:
        """Awaits ``work``, the handling of one bus ``message`` (a nats ``Msg``) by ``group``."""
        ...


observer: Observer | None = None


def install(new: Observer | None) -> Observer | None:
    """Make ``new`` the process's observer (None: no observer); returns the one it replaces."""
    global observer
    previous, observer = observer, new
    return previous


async def consumed(group: str, message: Any, work: Awaitable[T]) -> T:
    """Await ``work`` (a consumer's handling of ``message``) under the observer, if one is installed."""
    watching = observer
    if watching is None:
        return await work
    return await watching.consume(group, message, work)
