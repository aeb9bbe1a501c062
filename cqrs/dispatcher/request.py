"""Run the handler of one request through a middleware chain and return its response and events."""

from __future__ import annotations

from typing import Any

from cqrs.container import Resolver, adapt
from cqrs.dispatcher.models import RequestDispatchResult, take_events
from cqrs.exceptions import HandlerNotFoundError
from cqrs.fallback import FallbackResolver
from cqrs.middlewares.base import MiddlewareChain
from cqrs.requests.map import RequestMap
from cqrs.requests.request import Request

__all__ = ["RequestDispatcher"]


class RequestDispatcher:
    """Resolves the handler bound to a request, runs it (wrapped by the chain), collects its events."""

    def __init__(
        self,
        request_map: RequestMap,
        container: Resolver | Any,
        middleware_chain: MiddlewareChain | None = None,
    ) -> None:
        self.request_map = request_map
        self.container: Resolver = FallbackResolver(adapt(container))
        self.middleware_chain = middleware_chain if middleware_chain is not None else MiddlewareChain()

    async def dispatch(self, request: Request) -> RequestDispatchResult:
        handler_type = self.request_map.get(type(request))
        if handler_type is None:
            raise HandlerNotFoundError(f"RequestHandler not found for {type(request).__qualname__}")
        handler = await self.container.resolve(handler_type)
        response = await self.middleware_chain.wrap(handler.handle)(request)
        return RequestDispatchResult(response, take_events(handler))
