"""The trace crosses the bus: the RPC's span, the publish, and a consumer's span and its handler's span
share one trace (the context travels in the message headers); publish latency and consumer lag are
recorded."""

from __future__ import annotations

import dataclasses

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from sample.files.v1 import files_pb2, files_pb2_grpc

from cqrs.bus import BusConfig, BusConsumer, NatsServer
from server.metrics import Metrics
from server.telemetry import Telemetry
from server.testing import serve_for_test
from tests.bus.helpers import Seen, broker, recording_mediator, until
from tests.bus.test_rpc import NotifyingHandler
from tests.server.helpers import app_with

pytestmark = pytest.mark.timeout(30)

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
TRACEPARENT = f"00-{TRACE_ID:032x}-00f067aa0ba902b7-01"


async def test_a_remote_consumer_span_joins_the_rpcs_trace(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    seen: Seen = []
    publisher = broker(nats_server.url, bus_config)
    consumer = BusConsumer(
        recording_mediator(seen, "remote"),
        group="audit",
        url=nats_server.url,
        config=bus_config,
        fetch_wait=0.2,
    )
    # the consumer's process watches through its own Telemetry, as a separate process would
    consuming = Telemetry(tracer_provider=provider, metrics=Metrics(registry))
    app = app_with(NotifyingHandler, message_broker=publisher)
    app.tracer_provider = provider
    app.settings = dataclasses.replace(app.settings, metrics_address="127.0.0.1:0")
    try:
        async with serve_for_test(app) as served:
            stub = served.stub(files_pb2_grpc.FileServiceStub)
            command = files_pb2.ProcessFilesCommand(file_ids=["a"])
            call = stub.ProcessFiles(command, metadata=(("traceparent", TRACEPARENT),))
            assert [r.file_id async for r in call] == ["a"]
            telemetry = served.running.telemetry
            assert telemetry is not None and telemetry.metrics is not None
            published = {"event": "FileChanged"}
            assert (
                telemetry.metrics.registry.get_sample_value("cqrs_bus_publish_seconds_count", published) == 1
            )
        consuming.install()
        await consumer.start()
        await until(lambda: bool(seen), what="the consumer handled the event")
        await consumer.stop()
    finally:
        consuming.close()
        await consumer.stop()
        await publisher.close()

    spans = {span.name: span for span in exporter.get_finished_spans()}
    rpc = spans["sample.files.v1.FileService/ProcessFiles"]
    publish = spans["publish FileChanged"]
    consume = spans["consume FileChanged"]
    handle = spans["handle FileChanged"]
    assert {span.context.trace_id for span in (rpc, publish, consume, handle) if span.context} == {TRACE_ID}
    assert publish.kind is SpanKind.PRODUCER and consume.kind is SpanKind.CONSUMER
    assert rpc.context is not None and publish.parent is not None
    assert publish.parent.span_id == rpc.context.span_id
    assert publish.context is not None and consume.parent is not None and consume.parent.is_remote
    assert consume.parent.span_id == publish.context.span_id
    assert consume.context is not None and handle.parent is not None
    assert handle.parent.span_id == consume.context.span_id
    assert dict(consume.attributes or {})["messaging.consumer.group.name"] == "audit"
    # the consumer's lag is what the stream held for the group after this message: nothing
    assert registry.get_sample_value("cqrs_bus_consumer_lag_messages", {"group": "audit"}) == 0
