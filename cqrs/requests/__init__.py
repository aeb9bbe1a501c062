"""Requests, responses, their handlers, the request map and ``bootstrap`` (python-cqrs paths)."""

from cqrs.requests.map import RequestMap
from cqrs.requests.request import Request, Response
from cqrs.requests.request_handler import (
    RequestHandler,
    StreamingRequestHandler,
    SyncStreamingRequestHandler,
    handler_types,
)

__all__ = [
    "Request",
    "RequestHandler",
    "RequestMap",
    "Response",
    "StreamingRequestHandler",
    "SyncStreamingRequestHandler",
    "handler_types",
]
