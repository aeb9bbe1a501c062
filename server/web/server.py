"""The HTTP port for browsers: a Starlette app under uvicorn, in the gRPC server's event loop.

Each bound RPC has a route at its gRPC path; ``GET /healthz`` answers load balancers; a static
folder (``App.serve_static``) is served at ``/``. CORS is allowed for the configured origins
only. ``stop`` drains like the gRPC server: new RPCs get UNAVAILABLE, those in flight have the
grace period, then they are ended (an SSE stream with an ``end`` event saying UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from server.health import Health, ServingStatus
from server.web.endpoint import Ending, RpcEndpoint, Shared
from server.web.protocols import Target

logger = logging.getLogger("server.web")

# request headers browsers may send cross-origin, and response headers their code may read
ALLOWED_HEADERS = (
    "authorization",
    "content-type",
    "accept",
    "connect-protocol-version",
    "connect-timeout-ms",
    "grpc-timeout",
    "last-event-id",
    "x-grpc-web",
    "x-user-agent",
)
EXPOSED_HEADERS = ("grpc-status", "grpc-message", "grpc-status-details-bin", "error-id", "x-subscribed")
# how long ended RPCs may take to run their handlers' finally blocks before the port closes
_SETTLE_SECONDS = 5.0


class WebServer:
    """Serves ``targets`` over gRPC-Web, Connect and SSE on one HTTP/1.1 port."""

    def __init__(
        self,
        targets: Sequence[tuple[Target, bool]],
        shared: Shared,
        health: Health,
        *,
        cors_origins: Sequence[str] = (),
        static_dir: Path | None = None,
    ) -> None:
        self.shared = shared
        self._health = health
        routes: list[BaseRoute] = [
            Route(target.path, RpcEndpoint(target, shared, client_streaming=streams), methods=["GET", "POST"])
            for target, streams in targets
        ]
        routes.append(Route("/healthz", self._healthz, methods=["GET"]))
        if static_dir is not None:
            routes.append(Mount("/", StaticFiles(directory=static_dir, html=True)))
        middleware = []
        if cors_origins:
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=list(cors_origins),
                    allow_methods=["GET", "POST"],
                    allow_headers=list(ALLOWED_HEADERS),
                    expose_headers=list(EXPOSED_HEADERS),
                    max_age=600,
                )
            )
        self.asgi = Starlette(routes=routes, middleware=middleware)
        self._server: uvicorn.Server | None = None
        self._sockets: list[socket.socket] = []
        self.port = 0

    async def _healthz(self, request: Request) -> JSONResponse:
        """The overall health (or ``?service=``) for load balancers: 200 when SERVING, else 503."""
        status = await self._health.status(request.query_params.get("service", ""))
        name = "SERVICE_UNKNOWN" if status is None else status.name
        return JSONResponse({"status": name}, status_code=200 if status is ServingStatus.SERVING else 503)

    async def start(
        self,
        address: str,
        *,
        reuse_port: bool = False,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_client_ca: str | None = None,
    ) -> int:
        """Listen on ``address`` (``host:port``; port 0 picks one) and return the port.

        With ``tls_cert`` and ``tls_key`` it speaks HTTPS only; ``tls_client_ca`` also requires a
        client certificate signed by that CA (the gRPC port's TLS files, docs/web.md).
        """
        host, _, port = address.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        try:
            sock = socket.create_server(
                (host, int(port)),
                family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                reuse_port=reuse_port,
            )
        except (OSError, ValueError) as exc:
            raise OSError(f"could not bind the HTTP port {address}: {exc}") from None
        self._sockets = [sock]
        config = uvicorn.Config(
            self.asgi,
            lifespan="off",
            log_config=None,  # uvicorn's few messages go through the server's own logging setup
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=1,
            ssl_certfile=tls_cert if tls_key else None,
            ssl_keyfile=tls_key if tls_cert else None,
            ssl_ca_certs=tls_client_ca,
            ssl_cert_reqs=ssl.CERT_REQUIRED if tls_client_ca else ssl.CERT_NONE,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=self._sockets)
        self._server = server
        self.port = int(sock.getsockname()[1])
        return self.port

    async def stop(self, grace: float) -> None:
        """Drain (the App has set the drain signal): wait up to ``grace``, end the rest, close."""
        shared = self.shared
        try:
            await asyncio.wait_for(shared.idle.wait(), grace)
        except TimeoutError:
            logger.info("ending %d HTTP RPC(s) still running after the grace period", len(shared.flights))
        for flight in list(shared.flights):
            flight.end(Ending.DRAIN)
        try:
            await asyncio.wait_for(shared.idle.wait(), _SETTLE_SECONDS)
        except TimeoutError:
            logger.warning("%d HTTP RPC(s) did not end after being cancelled", len(shared.flights))
        if self._server is not None:
            await self._server.shutdown(sockets=self._sockets)
