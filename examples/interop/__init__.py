"""gRPC's interop ``grpc.testing.TestService``, served by handlers through the mediators.

``create_app`` is what ``python -m server --app examples.interop:create_app`` serves;
``examples.interop.client`` runs gRPC's interop cases against a server.
"""

from examples.interop.app import create_app

__all__ = ["create_app"]
