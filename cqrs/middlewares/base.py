"""``Middleware`` and python-cqrs's ``MiddlewareChain`` (an ordered list a mediator takes as
``middleware_chain=``; the first added is the outermost)."""

from __future__ import annotations

from collections.abc import Iterable

from cqrs.middleware import Middleware, Next, build_chain

__all__ = ["Middleware", "MiddlewareChain"]


class MiddlewareChain:
    """Middlewares in the order they wrap a request, outermost first."""

    def __init__(self, middlewares: Iterable[Middleware] = ()) -> None:
        self.middlewares: list[Middleware] = list(middlewares)

    def set(self, chain: Iterable[Middleware]) -> None:
        """Replace the whole chain."""
        self.middlewares = list(chain)

    def add(self, middleware: Middleware) -> None:
        """Append ``middleware`` inside those already added."""
        self.middlewares.append(middleware)

    def wrap(self, handle: Next) -> Next:
        """``handle`` wrapped by the chain."""
        return build_chain(self.middlewares, handle)
