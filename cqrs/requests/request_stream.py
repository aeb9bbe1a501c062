"""The requests of a client-streaming or bidirectional call, as one value the mediator can route."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Generic, TypeVar

from cqrs.requests.request import Request

__all__ = ["RequestStream"]

ReqT = TypeVar("ReqT", bound=Request)


class RequestStream(Generic[ReqT]):
    """``requests`` of class ``request_type``, iterated once by the handler bound to ``request_type``.

    ``mediator.send(RequestStream(Chunk, chunks))`` runs a
    :class:`~cqrs.ClientStreamingRequestHandler`; ``mediator.stream(RequestStream(Ping, pings))`` a
    :class:`~cqrs.BidiStreamingRequestHandler`. The handler pulls: nothing is read ahead of it.
    """

    __slots__ = ("_requests", "request_type")

    def __init__(self, request_type: type[ReqT], requests: AsyncIterable[ReqT]) -> None:
        if not isinstance(request_type, type) or not issubclass(request_type, Request):
            raise TypeError(f"RequestStream needs a cqrs.Request class first, got {request_type!r}")
        self.request_type = request_type
        self._requests = requests

    def __aiter__(self) -> AsyncIterator[ReqT]:
        return aiter(self._requests)

    def __repr__(self) -> str:
        return f"RequestStream({self.request_type.__qualname__})"
