"""Server settings with safe defaults; the CLI fills them from flags and environment variables."""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Mapping
from typing import Any

import grpc

MiB = 1024 * 1024

COMPRESSIONS: Mapping[str, grpc.Compression] = {
    "none": grpc.Compression.NoCompression,
    "gzip": grpc.Compression.Gzip,
    "deflate": grpc.Compression.Deflate,
}


def compression_of(algorithm: str | grpc.Compression) -> grpc.Compression:
    """The ``grpc.Compression`` named ``"none"``, ``"gzip"`` or ``"deflate"``; one given passes through."""
    if isinstance(algorithm, grpc.Compression):
        return algorithm
    try:
        return COMPRESSIONS[algorithm]
    except KeyError:
        choices = ", ".join(COMPRESSIONS)
        raise ValueError(f"unknown compression {algorithm!r}; use one of: {choices}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class ServerSettings:
    """Transport settings of one server.

    ``grace``: seconds in-flight RPCs may run after a shutdown starts before they are cancelled.

    ``max_concurrent_streams``: application streams served at once; one more is refused at once
    with RESOURCE_EXHAUSTED, while health checks and reflection keep answering (grpc's own
    ``maximum_concurrent_rpcs`` counts those too, so an overloaded server would look dead to
    its orchestrator). ``None`` means no limit.

    Message size limits protect memory from one oversized request; grpc refuses a larger one
    with RESOURCE_EXHAUSTED before our code sees it.

    Keepalive: the server pings an idle connection every ``keepalive_time`` seconds and drops
    it when no answer comes within ``keepalive_timeout``; streams of a client that vanished
    without closing its socket (a frozen process, a dead NAT entry) are then cancelled and
    their handlers closed. ``min_client_ping_interval`` is how often clients may ping us.

    Flow control is grpc's: a stream parked behind a slow reader is bounded by the client's HTTP/2
    window and the socket buffers, not by a queue of ours (docs/semantics.md).

    ``reuse_port``: bind with SO_REUSEPORT so several processes can share the port
    (``--workers N`` sets it in each worker; off otherwise, so a second server fails to bind).

    Security (docs/security.md): ``tls_cert`` + ``tls_key`` (PEM paths) make the server speak TLS
    only; ``tls_client_ca`` also requires client certificates signed by that CA (mutual TLS).
    ``auth_tokens_file`` turns on bearer-token authentication for every RPC except health checks
    (unless ``health_requires_auth``) and reflection (unless ``reflection_requires_auth``);
    ``reflection=False`` does not serve reflection at all. Problems with these files are reported
    when the server starts, which then refuses to.

    ``compression``: how responses are compressed unless a handler chooses otherwise
    (``current_rpc().set_compression``): ``"none"``, ``"gzip"`` or ``"deflate"``.

    ``http_address``: also serve the RPCs to browsers on this ``host:port`` (gRPC-Web, Connect, SSE;
    docs/web.md), with CORS allowed for the origins of ``http_cors_origins`` only.
    ``metrics_address``: ``HOST:PORT`` where ``/metrics`` is served for Prometheus (port 0: any free
    one); ``None`` records no metrics (docs/observability.md).

    ``nats_url``: the NATS server(s) of the event bus (``nats://host:port``, comma-separated for a
    cluster). An App given a ``broker`` connects it there at start (docs/bus.md); ``None`` leaves the
    broker's own URL.
    """

    grace: float = 10.0
    max_concurrent_streams: int | None = None
    max_receive_message_bytes: int = 4 * MiB
    max_send_message_bytes: int = 16 * MiB
    max_metadata_bytes: int = 16 * 1024
    keepalive_time: float = 60.0
    keepalive_timeout: float = 20.0
    min_client_ping_interval: float = 10.0
    reuse_port: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    auth_tokens_file: str | None = None
    reflection: bool = True
    reflection_requires_auth: bool = False
    health_requires_auth: bool = False
    compression: str = "none"
    nats_url: str | None = None
    http_address: str | None = None
    http_cors_origins: tuple[str, ...] = ()
    metrics_address: str | None = None
    extra_options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.max_concurrent_streams is not None and self.max_concurrent_streams < 1:
            raise ValueError("max_concurrent_streams must be at least 1 (or None for no limit)")
        compression_of(self.compression)  # an unknown name is refused here, not when serving
        if self.nats_url is not None:
            check_nats_url(self.nats_url)
        if self.metrics_address is not None:
            split_host_port(self.metrics_address)
        for name in ("grace", "keepalive_time", "keepalive_timeout", "min_client_ping_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def grpc_options(self) -> list[tuple[str, Any]]:
        """The grpc channel arguments these settings stand for."""
        return [
            ("grpc.max_receive_message_length", self.max_receive_message_bytes),
            ("grpc.max_send_message_length", self.max_send_message_bytes),
            ("grpc.max_metadata_size", self.max_metadata_bytes),
            # The soft limit above only refuses at random between it and this hard one: make both one.
            ("grpc.absolute_max_metadata_size", self.max_metadata_bytes),
            ("grpc.keepalive_time_ms", int(self.keepalive_time * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout * 1000)),
            # Newer grpc cores wait for a ping's ack per this argument (default one minute), not
            # per keepalive_timeout alone; without it a frozen peer holds its streams for a minute.
            ("grpc.http2.ping_timeout_ms", int(self.keepalive_timeout * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_ping_interval_without_data_ms", int(self.min_client_ping_interval * 1000)),
            # One process owns the port unless --workers asks for sharing (server/workers.py).
            ("grpc.so_reuseport", int(self.reuse_port)),
            *self.extra_options,
        ]


NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def check_nats_url(url: str) -> None:
    """Refuse (``ValueError``) what is not ``nats://host[:port]`` (or tls, ws, wss), comma-separated."""
    for one in url.split(","):
        parts = urllib.parse.urlsplit(one.strip())
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            parts = parts._replace(netloc="")
        if parts.scheme not in NATS_SCHEMES or not parts.hostname:
            raise ValueError(f"bad NATS URL {one.strip()!r}: use nats://host:port (or tls://, ws://, wss://)")


def split_host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as ``(host, port)``; ValueError names what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host.strip("[]"):
        raise ValueError(f"bad address {address!r}: use HOST:PORT, e.g. 0.0.0.0:9464")
    return host.strip("[]"), int(port)
