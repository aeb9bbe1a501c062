"""The bound RPCs for browsers: gRPC-Web, Connect and SSE on one HTTP port (docs/web.md).

``App`` starts a :class:`WebServer` when ``settings.http_address`` is set; it serves the same
method handlers as the gRPC server, so binding, codecs, errors, limits and drain are shared.
"""

from server.web.endpoint import Shared
from server.web.protocols import Target
from server.web.server import WebServer

__all__ = ["Shared", "Target", "WebServer"]
