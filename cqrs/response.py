"""python-cqrs 4.x path: ``from cqrs.response import Response``."""

from cqrs.requests.request import Response

__all__ = ["Response"]
