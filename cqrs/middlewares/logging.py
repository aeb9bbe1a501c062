"""A middleware that logs each request and what its handler returned (logger ``cqrs``, DEBUG)."""

from __future__ import annotations

import logging
from typing import Any

from cqrs.middleware import Next
from cqrs.requests.request import Request

__all__ = ["LoggingMiddleware"]

logger = logging.getLogger("cqrs")


class LoggingMiddleware:
    """Logs ``request`` before and the result after the rest of the chain (for a stream: the item count)."""

    async def __call__(self, request: Request, next: Next) -> Any:
        logger.debug("request %s: %r", type(request).__qualname__, request)
        result = await next(request)
        logger.debug("request %s done: %r", type(request).__qualname__, result)
        return result
