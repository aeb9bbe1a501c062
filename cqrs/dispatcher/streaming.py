"""Run a streaming handler (async or plain generator) and yield each item with its events."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

from cqrs.container import Resolver, adapt
from cqrs.dispatcher.models import RequestDispatchResult, take_events
from cqrs.exceptions import HandlerNotFoundError
from cqrs.fallback import FallbackResolver
from cqrs.middlewares.base import MiddlewareChain
from cqrs.requests.map import RequestMap
from cqrs.requests.request import Request

__all__ = ["StreamingRequestDispatcher"]


class StreamingRequestDispatcher:
    """Yields one :class:`RequestDispatchResult` per item the handler yields (middleware is not applied
    to streams here; :class:`cqrs.StreamingRequestMediator` wraps whole streams)."""

    def __init__(
        self,
        request_map: RequestMap,
        container: Resolver | Any,
        middleware_chain: MiddlewareChain | None = None,
    ) -> None:
        self.request_map = request_map
        self.container: Resolver = FallbackResolver(adapt(container))
        self.middleware_chain = middleware_chain if middleware_chain is not None else MiddlewareChain()

    async def dispatch(self, request: Request) -> AsyncIterator[RequestDispatchResult]:
        handler_type = self.request_map.get(type(request))
        if handler_type is None:
            raise HandlerNotFoundError(f"StreamingRequestHandler not found for {type(request).__qualname__}")
        handler = await self.container.resolve(handler_type)
        items = handler.handle(request)
        if inspect.isasyncgen(items):
            try:
                async for item in items:
                    yield RequestDispatchResult(item, take_events(handler))
            finally:
                await items.aclose()
        else:
            for item in items:
                yield RequestDispatchResult(item, take_events(handler))
