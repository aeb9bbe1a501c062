"""Requests (commands and queries) and the responses their handlers return or yield.

Subclasses are keyword-only dataclasses without a decorator; see :mod:`cqrs._model`.
"""

from __future__ import annotations

from cqrs._model import Model

__all__ = ["Request", "Response"]


class Request(Model, _abstract=True):
    """A command or a query. One handler is bound to each request class."""


class Response(Model, _abstract=True):
    """What a handler returns (unary) or yields (one per streamed message)."""
