"""python-cqrs's middleware paths; the middleware itself is :mod:`cqrs.middleware`'s."""

from cqrs.middlewares.base import Middleware, MiddlewareChain

__all__ = ["Middleware", "MiddlewareChain"]
