"""OpenTelemetry tracing, configured by the standard ``OTEL_*`` environment variables.

Tracing is on when ``OTEL_TRACES_EXPORTER`` names exporters (``console``, ``otlp``...) and
``OTEL_SDK_DISABLED`` is not true. Each name is loaded from the SDK's ``opentelemetry_traces_exporter``
entry points; ``otlp`` means OTLP over HTTP unless ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` (or
``OTEL_EXPORTER_OTLP_PROTOCOL``) says ``grpc``. The SDK itself reads the rest: the service name and
resource, the sampler, the batch processor's and each exporter's settings.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

_configured: TracerProvider | None = None


def exporter_names() -> list[str]:
    """The exporters ``OTEL_TRACES_EXPORTER`` asks for (none when it is unset, ``none`` or disabled)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "")
    names = [name.strip() for name in raw.split(",") if name.strip()]
    return [] if "none" in names else names


def _entry_point(name: str) -> str:
    if name != "otlp":
        return name
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    return "otlp_proto_grpc" if protocol.strip() == "grpc" else "otlp_proto_http"


def _exporter(name: str) -> SpanExporter:
    found = entry_points(group="opentelemetry_traces_exporter", name=_entry_point(name))
    for entry in found:
        exporter: SpanExporter = entry.load()()
        return exporter
    raise ValueError(
        f"OTEL_TRACES_EXPORTER names {name!r}, which no installed package provides "
        "(console and otlp come with the observability extra)"
    )


def provider_from_env() -> TracerProvider | None:
    """The process's tracer provider as the ``OTEL_*`` variables describe it, made (and set as the
    global one) on the first call; None when tracing is off."""
    global _configured
    if _configured is not None:
        return _configured
    names = exporter_names()
    if not names:
        return None
    provider = TracerProvider()
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    _configured = provider
    return provider
