"""Prometheus metrics: go-grpc-prometheus's names and labels, plus streams, event handlers and the bus.

Every label is bounded by the code, never by the data: RPC names, status codes, handler classes,
event names, subscriber groups. With ``--workers N`` the workers write their values to
``PROMETHEUS_MULTIPROC_DIR`` and the supervisor alone serves ``/metrics``, summed over the workers
(prometheus-client's multiprocess mode; docs/observability.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from server.settings import split_host_port

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
RPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")

# go-grpc-prometheus leaves out the `_created` series; so do we
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The server's metric families, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        rpc = RPC_LABELS
        self.started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", rpc, registry=registry
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, whatever their status.",
            (*rpc, "grpc_code"),
            registry=registry,
        )
        self.received = Counter(
            "grpc_server_msg_received_total",
            "Stream messages received on the server.",
            rpc,
            registry=registry,
        )
        self.sent = Counter(
            "grpc_server_msg_sent_total", "Stream messages sent by the server.", rpc, registry=registry
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Time from an RPC's start to its status, in seconds.",
            rpc,
            registry=registry,
        )
        self.in_flight = Gauge(
            "cqrs_grpc_streams_in_flight",
            "Streaming RPCs being served now.",
            rpc,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.shed = Counter(
            "cqrs_grpc_streams_shed_total",
            "Streams refused with RESOURCE_EXHAUSTED by --max-concurrent-streams.",
            rpc,
            registry=registry,
        )
        self.handler_seconds = Histogram(
            "cqrs_event_handler_seconds",
            "Time an event handler's handle() took, in seconds.",
            ("handler",),
            registry=registry,
        )
        self.handler_failures = Counter(
            "cqrs_event_handler_failures_total",
            "Event handler calls that raised.",
            ("handler",),
            registry=registry,
        )
        self.publish_seconds = Histogram(
            "cqrs_bus_publish_seconds",
            "Time until JetStream acknowledged a published event, retries included, in seconds.",
            ("event",),
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "cqrs_bus_consumer_lag_messages",
            "Messages of the stream not yet delivered to the subscriber group, as of its last message.",
            ("group",),
            registry=registry,
            multiprocess_mode="livemax",
        )


class Exposition:
    """``/metrics`` of a registry served over HTTP by a thread of prometheus-client's own server."""

    def __init__(self, address: str, registry: CollectorRegistry) -> None:
        host, port = split_host_port(address)
        self._server, self._thread = prometheus_client.start_http_server(port, host, registry)
        self.host = host
        self.port = int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def is_multiprocess_worker() -> bool:
    """True in a ``--workers`` worker whose values the supervisor collects (it must not serve)."""
    return MULTIPROC_ENV in os.environ and "CQRS_GRPC_WORKER_INDEX" in os.environ


@contextmanager
def supervised(address: str | None) -> Iterator[dict[str, str]]:
    """For the ``--workers`` supervisor: the workers' environment for multiprocess mode, and
    ``/metrics`` served from their files at ``address`` until the block ends (nothing if None)."""
    if address is None:
        yield {}
        return
    given = os.environ.get(MULTIPROC_ENV)
    directory = given or tempfile.mkdtemp(prefix="cqrs-grpc-metrics-")
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    exposition = Exposition(address, registry)
    try:
        yield {MULTIPROC_ENV: directory}
    finally:
        exposition.stop()
        if given is None:
            shutil.rmtree(directory, ignore_errors=True)


def worker_exited(pid: int, env: dict[str, str]) -> None:
    """Drop an exited worker's live gauges (its counters and histograms still count)."""
    directory = env.get(MULTIPROC_ENV)
    if directory is not None:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
