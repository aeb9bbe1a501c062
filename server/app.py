"""The App: protos in, a running grpc.aio server out, with no servicer written by hand."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from cqrs import Request, RequestMediator, StreamingRequestMediator
from server import bus
from server.auth import TokenAuth
from server.errors import ErrorMapper
from server.health import OVERALL, Health, HealthCheck
from server.health import SERVICE_NAME as HEALTH_SERVICE
from server.limits import StreamLimit
from server.observability import RpcLog
from server.reflection import SERVICE_NAMES as REFLECTION_SERVICES
from server.reflection import Reflection
from server.routing import (
    Route,
    ServiceSource,
    StartupError,
    build_routes,
    pick_services,
    service_descriptors,
)
from server.rpc import RpcAdapter
from server.settings import ServerSettings, compression_of
from server.tls import ServerTls

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from cqrs.bus import JetStreamBroker
    from server.telemetry import Telemetry
    from server.web import WebServer

logger = logging.getLogger("server")

ShutdownCallback = Callable[[], Awaitable[None] | None]
StartupCallback = Callable[[], Awaitable[None]]


class App:
    """Serves the RPCs of the added services through the given mediators.

    Server-streaming RPCs go to ``streaming_mediator.stream`` (each yield of the handler is
    one message), unary RPCs to ``mediator.send``. Wiring is checked in ``add_services``:
    a problem there raises ``StartupError`` naming every RPC, class and field at fault.

    ``broker``: the :class:`cqrs.bus.JetStreamBroker` the mediators publish notification events
    through (their ``message_broker=``). The App connects it to ``settings.nats_url`` at start (an
    unreachable bus stops the start with :class:`cqrs.UnavailableError`), reports NOT_SERVING while
    it is disconnected (unless ``broker_in_health=False``: an app that keeps serving without the bus,
    e.g. one that queues its events in an outbox), and closes it after the server has stopped
    (docs/bus.md).

    ``tracer_provider``: where the RPCs' spans go; by default the ``OTEL_*`` variables decide, and
    tracing is off unless ``OTEL_TRACES_EXPORTER`` names an exporter (docs/observability.md).
    """

    def __init__(
        self,
        *,
        streaming_mediator: StreamingRequestMediator | None = None,
        mediator: RequestMediator | None = None,
        settings: ServerSettings | None = None,
        error_domain: str = "cqrs-grpc",
        broker: JetStreamBroker | None = None,
        broker_in_health: bool = True,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        if streaming_mediator is None and mediator is None:
            raise ValueError("App needs a streaming_mediator, a mediator, or both")
        self.streaming_mediator = streaming_mediator
        self.mediator = mediator
        self.settings = settings or ServerSettings()
        self.broker = broker
        self.broker_in_health = broker_in_health
        self.tracer_provider = tracer_provider
        self.errors = ErrorMapper(error_domain)
        self.routes: list[Route] = []
        self.static_dir: Path | None = None
        self._shutdown_callbacks: list[ShutdownCallback] = []
        self._startup_callbacks: list[StartupCallback] = []
        self._health_checks: list[HealthCheck] = []

    def add_services(
        self,
        *sources: ServiceSource,
        bindings: Mapping[str, type[Request] | None] | None = None,
        services: Iterable[str] | None = None,
    ) -> None:
        """Bind every RPC of the services in ``sources`` (generated modules or descriptors).

        ``bindings`` binds RPCs explicitly: ``{"pkg.Service/Method": RequestClass}``, or ``None`` to
        leave one unserved (it answers UNIMPLEMENTED); an RPC whose input message other RPCs share
        must be bound this way. ``services`` picks services of ``sources`` by full or short name.
        """
        found = [service for source in sources for service in service_descriptors(source)]
        chosen = pick_services(found, services) if services is not None else found
        taken = {route.service for route in self.routes}
        duplicated = sorted(taken & {service.full_name for service in chosen})
        if duplicated:
            raise ValueError(f"services added twice: {', '.join(duplicated)}")
        self.routes += build_routes(
            chosen,
            streaming_mediator=self.streaming_mediator,
            mediator=self.mediator,
            bindings=dict(bindings or {}),
        )

    def on_shutdown(self, callback: ShutdownCallback) -> ShutdownCallback:
        """Run ``callback`` (sync or async) once the server has stopped and no RPC runs any more.

        For resources the handlers share (a database, a thread pool): closing them earlier would
        fail the RPCs still draining. Callbacks run in reverse order of registration; one that
        raises is logged and the others still run. They also run when ``start`` fails once the
        startup callbacks have begun, so they must cope with what was never opened. Usable as a
        decorator.
        """
        self._shutdown_callbacks.append(callback)
        return callback

    def on_startup(self, callback: StartupCallback) -> StartupCallback:
        """Await ``callback`` at start, after the bus is connected and before the port is bound.

        For resources the handlers need (opening a database pool, starting a background task); one
        that raises stops the start with its exception. Usable as a decorator.
        """
        self._startup_callbacks.append(callback)
        return callback

    def add_health_check(self, check: HealthCheck) -> None:
        """Make ``check`` (async, True when healthy) a dependency of the whole server: while it fails,
        health answers NOT_SERVING for ``""`` and every service."""
        self._health_checks.append(check)

    def serve_static(self, directory: str | Path) -> None:
        """Serve the files under ``directory`` at ``/`` of the HTTP port (``index.html`` for ``/``)."""
        path = Path(directory)
        if not path.is_dir():
            raise ValueError(f"serve_static({str(directory)!r}): not a directory")
        self.static_dir = path

    def map_error(self, exc_type: type[BaseException], code: grpc.StatusCode) -> None:
        """Send ``code`` when a handler raises ``exc_type`` (or a subclass)."""
        self.errors.register(exc_type, code)

    @property
    def service_names(self) -> list[str]:
        return sorted({route.service for route in self.routes})

    @contextlib.asynccontextmanager
    async def serve(self, address: str = "127.0.0.1:0") -> AsyncIterator[RunningServer]:
        """Start serving on ``address`` (port 0 picks a free one: read ``running.port``).

        On exit the server shuts down gracefully with ``settings.grace``.
        """
        running = await self.start(address)
        try:
            yield running
        finally:
            await running.stop()

    async def start(self, address: str = "127.0.0.1:0") -> RunningServer:
        """Start serving and return the handle; the caller must ``await running.stop()``."""
        if not self.routes:
            raise ValueError("no services to serve: call app.add_services(your_pb2) first")
        if self.broker is not None:
            await bus.connect(self.broker, self.settings.nats_url)
        try:
            for callback in self._startup_callbacks:
                await callback()
            return await self._start(address)
        except BaseException:
            await run_callbacks(reversed(self._shutdown_callbacks))  # undo what the startup began
            if self.broker is not None:
                await self.broker.close()
            raise

    async def _start(self, address: str) -> RunningServer:
        telemetry = self._telemetry()
        try:
            return await self._start_with(address, telemetry)
        except BaseException:
            if telemetry is not None:
                telemetry.close()
            raise

    def _telemetry(self) -> Telemetry | None:
        """Traces and metrics as asked for; with both off nothing of them is even imported."""
        if (
            self.tracer_provider is None
            and self.settings.metrics_address is None
            and not os.environ.get("OTEL_TRACES_EXPORTER")
        ):
            return None
        from server import telemetry

        return telemetry.from_settings(self.settings.metrics_address, self.tracer_provider)

    async def _start_with(self, address: str, telemetry: Telemetry | None) -> RunningServer:
        draining = asyncio.Event()
        log = RpcLog()
        tls, auth = self._security(log, draining)
        server = grpc.aio.server(
            options=self.settings.grpc_options(),
            interceptors=[auth] if auth else [],
            compression=compression_of(self.settings.compression),
        )
        stream_limit = StreamLimit(self.settings.max_concurrent_streams)
        adapter = RpcAdapter(
            streaming_mediator=self.streaming_mediator,
            mediator=self.mediator,
            errors=self.errors,
            log=log,
            draining=draining,
            stream_limit=stream_limit,
            telemetry=telemetry,
        )
        by_service: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = {}
        for route in self.routes:
            by_service.setdefault(route.service, {})[route.method] = adapter.method_handler(route)
        for service, handlers in by_service.items():
            # registered, not generic: grpc core matches the method path itself, no Python lookup per call
            server.add_registered_method_handlers(service, handlers)  # type: ignore[attr-defined]
        health = Health(self.service_names)
        bus_stops: list[ShutdownCallback] = []
        if self.broker is not None:
            bus_stops = [self.broker.close]
            if self.broker_in_health:
                bus_stops.insert(0, bus.watch_health(self.broker, health))
        for check in self._health_checks:
            health.add_check(OVERALL, check)
        health.register(server)
        if self.settings.reflection:
            reflection = Reflection([*self.service_names, *health.service_names_served()])
            reflection.register(server)
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, tls.credentials())
        if port == 0 and not address.endswith(":0"):
            raise OSError(f"could not bind {address}: is another process listening there?")
        await server.start()
        web = None
        if self.settings.http_address is not None:
            try:
                web = await self._start_web(by_service, health, auth, draining)
            except BaseException:
                await server.stop(None)
                raise
        health.set_serving()
        host = address.rsplit(":", 1)[0]
        running = RunningServer(
            server,
            health,
            draining,
            stream_limit,
            host=host,
            port=port,
            grace=self.settings.grace,
            # the bus last: a shutdown callback may still publish
            on_stopped=(
                *reversed(self._shutdown_callbacks),
                *bus_stops,
                *([telemetry.close] if telemetry is not None else []),
            ),
            tls=tls,
            auth=auth,
            web=web,
            telemetry=telemetry,
        )
        if web is not None:  # before the "serving address=" line: whoever waits for that one has both
            http_host = (self.settings.http_address or "").rpartition(":")[0]
            logger.info("serving http=%s:%d protocols=grpc-web,connect,sse", http_host, web.port)
        logger.info(
            "serving address=%s:%d services=%s bus=%s tls=%s auth=%s metrics=%s tracing=%s",
            host,
            port,
            ",".join(self.service_names),
            "off" if self.broker is None else self.broker.url,
            "off" if tls is None else "mutual" if tls.mutual else "on",
            "off" if auth is None else f"tokens({len(auth.names)})",
            _metrics_shown(telemetry),
            "off" if telemetry is None or telemetry.tracer is None else "on",
        )
        return running

    async def _start_web(
        self,
        by_service: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]],
        health: Health,
        auth: TokenAuth | None,
        draining: asyncio.Event,
    ) -> WebServer:
        """The HTTP port, serving the very handlers registered on the gRPC server (docs/web.md)."""
        from grpc_health.v1 import health_pb2

        from server.web import Shared, Target, WebServer

        targets: list[tuple[Target, bool]] = []
        for route in self.routes:
            assert route.request_class is not None and route.response_class is not None
            handler = by_service[route.service][route.method]
            target = Target(route.path, handler, route.request_class, route.response_class, route.streaming)
            targets.append((target, route.client_streaming))
        for method, handler in health.method_handlers().items():
            path = f"/{HEALTH_SERVICE}/{method}"
            request, response = health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
            targets.append((Target(path, handler, request, response, method == "Watch"), False))
        settings = self.settings
        shared = Shared(
            errors=self.errors,
            auth=auth,
            draining=draining,
            max_receive_bytes=settings.max_receive_message_bytes,
            max_send_bytes=settings.max_send_message_bytes,
        )
        web = WebServer(
            targets, shared, health, cors_origins=settings.http_cors_origins, static_dir=self.static_dir
        )
        assert settings.http_address is not None
        await web.start(
            settings.http_address,
            reuse_port=settings.reuse_port,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
            tls_client_ca=settings.tls_client_ca,
        )
        return web

    def _security(self, log: RpcLog, draining: asyncio.Event) -> tuple[ServerTls | None, TokenAuth | None]:
        """TLS credentials and the token interceptor the settings ask for; StartupError if unusable."""
        settings = self.settings
        tls = None
        if settings.tls_cert or settings.tls_key or settings.tls_client_ca:
            tls = ServerTls(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        if settings.auth_tokens_file is None:
            needing = [
                flag
                for flag, on in (
                    ("--reflection-requires-auth", settings.reflection_requires_auth),
                    ("--health-requires-auth", settings.health_requires_auth),
                )
                if on
            ]
            if needing:
                raise StartupError([f"{flag} needs --auth-tokens-file" for flag in needing])
            return tls, None
        open_services = [] if settings.health_requires_auth else [HEALTH_SERVICE]
        if not settings.reflection_requires_auth:
            open_services += REFLECTION_SERVICES
        auth = TokenAuth(
            settings.auth_tokens_file,
            errors=self.errors,
            log=log,
            draining=draining,
            open_services=open_services,
        )
        return tls, auth


def _metrics_shown(telemetry: Telemetry | None) -> str:
    if telemetry is None or telemetry.metrics is None:
        return "off"
    exposition = telemetry.exposition
    return "supervisor" if exposition is None else f"{exposition.host}:{exposition.port}"


async def run_callbacks(callbacks: Iterable[ShutdownCallback]) -> None:
    """Call each (awaiting what it returns) in order; one that raises is logged, the rest still run."""
    for callback in callbacks:
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("shutdown callback %r failed", callback)


class RunningServer:
    """A started server: its port, and a graceful ``stop``.

    ``stop`` marks health NOT_SERVING at once, sets the drain signal that endless streams
    watch, refuses new RPCs, lets in-flight ones run for ``grace`` seconds, then cancels them
    (their handlers' ``finally`` blocks run).
    """

    def __init__(
        self,
        server: grpc.aio.Server,
        health: Health,
        draining: asyncio.Event,
        stream_limit: StreamLimit,
        *,
        host: str,
        port: int,
        grace: float,
        on_stopped: tuple[ShutdownCallback, ...] = (),
        tls: ServerTls | None = None,
        auth: TokenAuth | None = None,
        web: WebServer | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.server = server
        self.web = web
        self.health = health
        self.draining = draining
        self.stream_limit = stream_limit
        self.host = host
        self.port = port
        self.grace = grace
        self._on_stopped = on_stopped
        self._stopping: asyncio.Task[None] | None = None
        self.tls = tls
        self.auth = auth
        self.telemetry = telemetry

    def reload(self) -> bool:
        """Re-read the TLS files and the tokens file (SIGHUP); open connections and streams go on.

        Files that fail their checks are logged and the ones in use stay. True if all reloaded.
        """
        ok = True
        if self.tls is not None:
            ok = self.tls.reload() and ok
        if self.auth is not None:
            ok = self.auth.reload() and ok
        return ok

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def http_port(self) -> int | None:
        """The port of the HTTP port for browsers (``settings.http_address``), or None without one."""
        return None if self.web is None else self.web.port

    async def stop(self, grace: float | None = None) -> None:
        """Shut down gracefully; safe to call more than once (later calls wait for the first)."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(self.grace if grace is None else grace))
        await asyncio.shield(self._stopping)

    async def _stop(self, grace: float) -> None:
        logger.info("draining address=%s grace=%.1fs", self.address, grace)
        self.health.set_not_serving()
        self.health.end_watches()
        self.draining.set()
        if self.web is None:
            await self.server.stop(grace)
        else:
            await asyncio.gather(self.server.stop(grace), self.web.stop(grace))
        await run_callbacks(self._on_stopped)
        logger.info("stopped address=%s", self.address)

    async def wait_for_termination(self) -> None:
        await self.server.wait_for_termination()
