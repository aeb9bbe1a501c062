"""Traces and metrics of one server: a watch per route for the RPC adapter, and the ``cqrs`` observer.

The adapter asks its route's :class:`RouteWatch` for a :class:`RpcProbe` once per RPC, and only when
telemetry is on: with both tracing and metrics off there is no watch and nothing runs per RPC or per
message. One span per RPC (``package.Service/Method``, kind SERVER, the caller's ``traceparent`` its
parent); event handlers, bus publishes and bus consumers get child spans through :mod:`cqrs.observe`.
An RPC's first ``event_spans_per_rpc`` event handler calls get spans; the rest of a long stream is
counted on the RPC's span (``cqrs.event_spans.dropped``) and in the metrics, so a stream of many
thousand items neither floods the trace nor pays for a span per item (docs/observability.md).
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import Any, TypeVar

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from cqrs import observe
from server.context import RpcContext
from server.metrics import Exposition, Metrics
from server.routing import Route

T = TypeVar("T")

EVENT_SPANS_PER_RPC = 100
"""Default of how many event handler calls of one RPC get a span (``CQRS_GRPC_EVENT_SPANS_PER_RPC``)."""
EVENT_SPANS_ENV = "CQRS_GRPC_EVENT_SPANS_PER_RPC"
SENT_BATCH = 32
"""A stream's sent messages reach ``grpc_server_msg_sent_total`` this many at a time, the rest at its end."""

# the current RPC's event span budget: [spans left, spans dropped]; None outside an RPC (bus consumers)
_event_spans: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("event_spans", default=None)

# the codes OpenTelemetry's semantic conventions count as a server's error
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def grpc_type(route: Route) -> str:
    """go-grpc-prometheus's ``grpc_type`` of a route."""
    if route.client_streaming:
        return "bidi_stream" if route.streaming else "client_stream"
    return "server_stream" if route.streaming else "unary"


class Telemetry:
    """What one server records: spans through ``tracer_provider``, metrics in ``metrics`` (either may be
    None), and ``/metrics`` served by ``exposition`` when this process serves it."""

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None,
        metrics: Metrics | None,
        exposition: Exposition | None = None,
        event_spans_per_rpc: int = EVENT_SPANS_PER_RPC,
    ) -> None:
        self.tracer = tracer_provider.get_tracer("cqrs_grpc") if tracer_provider is not None else None
        self.event_spans_per_rpc = event_spans_per_rpc
        self.metrics = metrics
        self.exposition = exposition
        self._handlers: dict[type[Any], tuple[str, Any, Any]] = {}
        self._replaced: observe.Observer | None = None

    def route(self, route: Route) -> RouteWatch:
        return RouteWatch(self, route)

    def install(self) -> None:
        """Watch this process's event handlers and bus through :mod:`cqrs.observe`."""
        self._replaced = observe.install(self)

    def close(self) -> None:
        """Stop watching and stop serving ``/metrics``."""
        if observe.observer is self:
            observe.install(self._replaced)
        if self.exposition is not None:
            self.exposition.stop()

    # -- the cqrs observer ------------------------------------------------------------------------

    def handling(self, handler_type: type[Any], event: object) -> _Handling:
        known = self._handlers.get(handler_type)
        if known is None:
            name = handler_type.__qualname__
            metrics = self.metrics
            known = (
                name,
                metrics.handler_seconds.labels(name) if metrics is not None else None,
                metrics.handler_failures.labels(name) if metrics is not None else None,
            )
            self._handlers[handler_type] = known
        tracer = self.tracer
        budget = _event_spans.get() if tracer is not None else None
        if budget is not None:
            if budget[0] > 0:
                budget[0] -= 1
            else:
                budget[1] += 1
                tracer = None
        return _Handling(tracer, known, type(event).__qualname__)

    async def publish(self, message_name: str, headers: MutableMapping[str, str], work: Awaitable[T]) -> T:
        started = time.monotonic()
        span, token = None, None
        if self.tracer is not None:
            span = self.tracer.start_span(
                f"publish {message_name}",
                kind=SpanKind.PRODUCER,
                attributes={"messaging.system": "nats", "cqrs.event": message_name},
            )
            token = otel_context.attach(trace.set_span_in_context(span))
            propagate.inject(headers)
        try:
            return await work
        except Exception as exc:
            if span is not None:
                _failed(span, exc)
            raise
        finally:
            if self.metrics is not None:
                self.metrics.publish_seconds.labels(message_name).observe(time.monotonic() - started)
            if span is not None and token is not None:
                otel_context.detach(token)
                span.end()

    async def consume(self, group: str, message: Any, work: Awaitable[T]) -> T:
        headers = message.headers or {}
        if self.metrics is not None:
            try:
                pending = message.metadata.num_pending
            except Exception:  # not a JetStream delivery: no position to report
                pending = None
            if pending is not None:
                self.metrics.consumer_lag.labels(group).set(pending)
        if self.tracer is None:
            return await work
        name = headers.get("Cqrs-Event", "event")
        span = self.tracer.start_span(
            f"consume {name}",
            context=propagate.extract(headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.consumer.group.name": group,
                "messaging.destination.name": str(message.subject),
                "cqrs.event": name,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            return await work
        except Exception as exc:
            _failed(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()


class _Handling:
    """One event handler call: a child span, its duration and, if it raises, a failure."""

    __slots__ = ("_event", "_known", "_span", "_started", "_token", "_tracer")

    def __init__(self, tracer: trace.Tracer | None, known: tuple[str, Any, Any], event: str) -> None:
        self._tracer = tracer
        self._known = known
        self._event = event
        self._span: Span | None = None
        self._token: object = None
        self._started = 0.0

    def __enter__(self) -> None:
        if self._tracer is not None:
            span = self._tracer.start_span(
                f"handle {self._event}",
                attributes={"cqrs.handler": self._known[0], "cqrs.event": self._event},
            )
            self._span = span
            self._token = otel_context.attach(trace.set_span_in_context(span))
        self._started = time.monotonic()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _, seconds, failures = self._known
        if seconds is not None:
            seconds.observe(time.monotonic() - self._started)
        failed = exc is not None and isinstance(exc, Exception)
        if failed and failures is not None:
            failures.inc()
        span = self._span
        if span is not None:
            if failed:
                assert exc is not None
                _failed(span, exc)
            otel_context.detach(self._token)  # type: ignore[arg-type]
            span.end()


def _failed(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


class RouteWatch:
    """The metric children and span name of one route, bound once; ``begin`` starts one RPC's probe."""

    def __init__(self, telemetry: Telemetry, route: Route) -> None:
        self.tracer = telemetry.tracer
        self.event_spans_per_rpc = telemetry.event_spans_per_rpc
        self.name = route.path.lstrip("/")
        self.service, self.method = route.service, route.method
        self.kind = grpc_type(route)
        self.server_streams = route.streaming
        self.client_streams = route.client_streaming
        metrics = telemetry.metrics
        self.metrics = metrics
        if metrics is not None:
            labels = (self.kind, self.service, self.method)
            self.started = metrics.started.labels(*labels)
            self.received = metrics.received.labels(*labels)
            self.sent = metrics.sent.labels(*labels)
            self.handling = metrics.handling.labels(*labels)
            self.in_flight = metrics.in_flight.labels(*labels) if self.kind != "unary" else None
            self.shed = metrics.shed.labels(*labels)
            self._handled: dict[grpc.StatusCode, Any] = {}
            self._labels = labels

    def handled(self, code: grpc.StatusCode) -> Any:
        child = self._handled.get(code)
        if child is None:
            assert self.metrics is not None
            child = self._handled[code] = self.metrics.handled.labels(*self._labels, code.name)
        return child

    def begin(self, rpc: RpcContext) -> RpcProbe:
        """Start watching ``rpc`` (in its task): its span becomes the current one."""
        return RpcProbe(self, rpc)


class RpcProbe:
    """One RPC: its span (current in the RPC's task until ``end``) and its metric updates."""

    __slots__ = ("_budget", "_rpc", "_span", "_token", "_unsent", "_watch", "received")

    def __init__(self, watch: RouteWatch, rpc: RpcContext) -> None:
        self._watch = watch
        self._rpc = rpc
        self.received = 0 if watch.client_streams else 1
        self._span: Span | None = None
        self._token: object = None
        self._budget: list[int] | None = None
        self._unsent = 0  # messages sent but not yet added to the counter
        if watch.tracer is not None:
            self._budget = [watch.event_spans_per_rpc, 0]
            _event_spans.set(self._budget)  # the RPC's own task: its context ends with it
            parent = propagate.extract(rpc.metadata)
            span = watch.tracer.start_span(
                watch.name,
                context=parent,
                kind=SpanKind.SERVER,
                attributes={
                    "rpc.system": "grpc",
                    "rpc.service": watch.service,
                    "rpc.method": watch.method,
                    **_peer(rpc.peer),
                },
            )
            self._span = span
            self._token = otel_context.attach(trace.set_span_in_context(span, parent))
        if watch.metrics is not None:
            watch.started.inc()
            if not watch.client_streams:
                watch.received.inc()
            if watch.in_flight is not None:
                watch.in_flight.inc()

    def writer(self, write: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        """``write`` that counts each message grpc accepted (metrics on only), adding them to the
        counter every ``SENT_BATCH`` messages and at the end: a long stream shows up while it runs."""
        if self._watch.metrics is None:
            return write
        sent = self._watch.sent

        async def counted(message: Any) -> None:
            await write(message)
            self._unsent += 1
            if self._unsent >= SENT_BATCH:
                sent.inc(self._unsent)
                self._unsent = 0

        return counted

    def reader(self, requests: AsyncIterable[bytes]) -> AsyncIterable[bytes]:
        """``requests`` counted as the handler reads them (client and bidi streams)."""
        received = self._watch.received if self._watch.metrics is not None else None

        async def counted() -> AsyncIterator[bytes]:
            async for request in requests:
                self.received += 1
                if received is not None:
                    received.inc()
                yield request

        return counted()

    def shed(self) -> None:
        """The stream was refused by the concurrent stream limit."""
        if self._watch.metrics is not None:
            self._watch.shed.inc()

    def end(self, code: grpc.StatusCode, sent: int) -> None:
        """Record the status; ``sent`` counts the messages grpc accepted. Call in the RPC's task."""
        watch = self._watch
        if watch.metrics is not None:
            watch.handled(code).inc()
            watch.handling.observe(time.monotonic() - self._rpc.started_at)
            if not watch.server_streams and sent:
                watch.sent.inc(sent)
            elif self._unsent:
                watch.sent.inc(self._unsent)
            if watch.in_flight is not None:
                watch.in_flight.dec()
        span = self._span
        if span is not None:
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            span.set_attribute("rpc.messages.received", self.received)
            span.set_attribute("rpc.messages.sent", sent)
            if self._budget is not None and self._budget[1]:
                span.set_attribute("cqrs.event_spans.dropped", self._budget[1])
            if code in _SERVER_ERRORS:
                span.set_status(Status(StatusCode.ERROR, code.name))
            otel_context.detach(self._token)  # type: ignore[arg-type]
            span.end()


def _peer(peer: str) -> dict[str, str | int]:
    """``ipv4:127.0.0.1:5000`` / ``ipv6:[::1]:5000`` as network.peer.address and .port."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6") or not rest:
        return {"network.peer.address": peer}
    host, _, port = rest.rpartition(":")
    address: dict[str, str | int] = {"network.peer.address": host.strip("[]")}
    if port.isdigit():
        address["network.peer.port"] = int(port)
    return address


def from_settings(
    metrics_address: str | None, tracer_provider: trace.TracerProvider | None
) -> Telemetry | None:
    """The telemetry a server's settings and the ``OTEL_*`` variables ask for, installed as the
    process's :mod:`cqrs.observe` observer; None when tracing and metrics are both off."""
    from prometheus_client import CollectorRegistry

    from server import metrics as metrics_module
    from server.tracing import provider_from_env

    provider = tracer_provider if tracer_provider is not None else provider_from_env()
    metrics = None
    exposition = None
    if metrics_address is not None:
        registry = CollectorRegistry()
        metrics = Metrics(registry)
        if not metrics_module.is_multiprocess_worker():  # the supervisor serves the workers' files
            exposition = Exposition(metrics_address, registry)
    if provider is None and metrics is None:
        return None
    spans = os.environ.get(EVENT_SPANS_ENV, "").strip()
    if spans and not spans.isdigit():
        raise ValueError(f"{EVENT_SPANS_ENV} must be a whole number of spans, got {spans!r}")
    telemetry = Telemetry(
        tracer_provider=provider,
        metrics=metrics,
        exposition=exposition,
        event_spans_per_rpc=int(spans) if spans else EVENT_SPANS_PER_RPC,
    )
    telemetry.install()
    return telemetry
