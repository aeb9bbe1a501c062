"""The demo service that ``make run`` serves: the seed's ProcessFiles example over gRPC."""

from server.demo.app import create_app

__all__ = ["create_app"]
