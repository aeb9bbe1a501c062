"""Traces and metrics of real RPCs: the SDK's in-memory exporter sees the spans, a real HTTP scrape of
``/metrics`` (parsed with prometheus-client's parser) shows the counts."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import re
import typing
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sample.files.v1 import files_pb2, files_pb2_grpc
from shapes.v1 import shapes_pb2, shapes_pb2_grpc

import cqrs
from cqrs import observe
from cqrs.events.event import Event
from cqrs.requests.request_handler import StreamingRequestHandler
from server.cli import parse_args
from server.metrics import Metrics
from server.observability import JsonFormatter
from server.telemetry import SENT_BATCH
from server.testing import serve_for_test
from tests.server.helpers import app_with
from tests.server.sample import (
    FileProcessedEvent,
    FileProcessedResult,
    FileStatusStore,
    ProcessFilesCommand,
    create_app,
)
from tests.server.test_rpc_shapes import Probe, served_shapes

pytestmark = pytest.mark.timeout(30)

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
PARENT_ID = 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"
PROCESS = "sample.files.v1.FileService/ProcessFiles"


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def by_name(finished: typing.Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in finished if span.name == name]


async def test_one_span_per_rpc_joins_the_callers_trace_and_event_handlers_are_its_children(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    app = create_app(FileStatusStore())
    app.tracer_provider = provider
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    rpc_logger = logging.getLogger("server.rpc")
    rpc_logger.addHandler(handler)
    level = rpc_logger.level
    rpc_logger.setLevel(logging.INFO)
    try:
        async with serve_for_test(app) as served:
            stub = served.stub(files_pb2_grpc.FileServiceStub)
            call = stub.ProcessFiles(
                files_pb2.ProcessFilesCommand(file_ids=["a", "b"]), metadata=(("traceparent", TRACEPARENT),)
            )
            assert [r.file_id async for r in call] == ["a", "b"]
    finally:
        rpc_logger.removeHandler(handler)
        rpc_logger.setLevel(level)

    finished = exporter.get_finished_spans()
    [rpc] = by_name(finished, PROCESS)
    assert rpc.kind is SpanKind.SERVER
    assert rpc.context is not None and rpc.parent is not None
    assert rpc.context.trace_id == TRACE_ID and rpc.parent.span_id == PARENT_ID
    attributes = dict(rpc.attributes or {})
    assert attributes["rpc.grpc.status_code"] == 0
    assert attributes["rpc.messages.sent"] == 2 and attributes["rpc.messages.received"] == 1
    assert attributes["rpc.service"] == "sample.files.v1.FileService"
    assert attributes["network.peer.address"] == "127.0.0.1"
    handled = by_name(finished, "handle FileProcessedEvent")
    assert len(handled) == 2  # one per item, not one per RPC
    for child in handled:
        assert child.context is not None and child.parent is not None
        assert child.context.trace_id == TRACE_ID and child.parent.span_id == rpc.context.span_id
        assert dict(child.attributes or {})["cqrs.handler"] == "RecordFileStatus"

    [line] = [json.loads(text) for text in lines.getvalue().splitlines()]
    assert line["trace_id"] == f"{TRACE_ID:032x}"
    assert line["span_id"] == f"{rpc.context.span_id:016x}"


async def test_a_long_stream_gets_event_spans_for_its_first_events_only_and_counts_the_rest(
    spans: tuple[TracerProvider, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, exporter = spans
    monkeypatch.setenv("CQRS_GRPC_EVENT_SPANS_PER_RPC", "3")
    app = create_app(FileStatusStore())
    app.tracer_provider = provider
    async with serve_for_test(app) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        ids = [f"f{n}" for n in range(5)]
        for _ in range(2):  # each RPC has a budget of its own
            call = stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=ids))
            assert [r.file_id async for r in call] == ids
    finished = exporter.get_finished_spans()
    rpcs = by_name(finished, PROCESS)
    assert len(rpcs) == 2
    assert len(by_name(finished, "handle FileProcessedEvent")) == 6  # 3 per RPC, not 5
    assert [dict(rpc.attributes or {})["cqrs.event_spans.dropped"] for rpc in rpcs] == [2, 2]


async def test_a_failed_rpc_span_carries_its_status_and_telemetry_off_leaves_no_observer(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    app = create_app(FileStatusStore())
    app.tracer_provider = provider
    async with serve_for_test(app) as served:
        assert observe.observer is served.running.telemetry
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id="nope"))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    [rpc] = by_name(exporter.get_finished_spans(), "sample.files.v1.FileService/GetFileStatus")
    assert rpc.parent is None  # no traceparent sent: a trace of its own
    assert dict(rpc.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert observe.observer is None  # uninstalled at stop

    async with serve_for_test(create_app(FileStatusStore())) as served:
        assert served.running.telemetry is None and observe.observer is None


# -- metrics -----------------------------------------------------------------------------------------


class HangingHandler(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    """One result (and one event) per file; at the file ``hang`` it waits until cancelled."""

    def __init__(self) -> None:
        self._events: list[Event] = []

    @property
    def events(self) -> list[Event]:
        return self._events.copy()

    def clear_events(self) -> None:
        self._events.clear()

    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        for file_id in request.file_ids:
            if file_id == "hang":
                await asyncio.Event().wait()
            now = datetime.now(UTC)
            self._events.append(FileProcessedEvent(file_id=file_id, status="completed", processed_at=now))
            yield FileProcessedResult(file_id=file_id, status="completed", processed_at=now)


class FlakyRecorder(cqrs.EventHandler[FileProcessedEvent]):
    """Fails on file ``b`` (isolated: the stream goes on)."""

    async def handle(self, event: FileProcessedEvent) -> None:
        if event.file_id == "b":
            raise RuntimeError("b is flaky")


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_a_scrape_shows_the_counts_of_ok_failed_shed_and_cancelled_rpcs() -> None:
    container = cqrs.Container()
    container.register_instance(FileStatusStore, FileStatusStore())
    app = app_with(HangingHandler, events=[(FileProcessedEvent, FlakyRecorder)], container=container)
    app.settings = dataclasses.replace(app.settings, metrics_address="127.0.0.1:0", max_concurrent_streams=1)
    stream = {"grpc_type": "server_stream", "grpc_service": "sample.files.v1.FileService"}
    process = {**stream, "grpc_method": "ProcessFiles"}
    status = {
        "grpc_type": "unary",
        "grpc_service": "sample.files.v1.FileService",
        "grpc_method": "GetFileStatus",
    }
    async with serve_for_test(app) as served:
        exposition = served.running.telemetry.exposition if served.running.telemetry else None
        assert exposition is not None
        port = exposition.port
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        got = [
            r.file_id
            async for r in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["a", "b", "c"]))
        ]
        assert got == ["a", "b", "c"]
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id="nope"))
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND

        hanging = stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["d", "hang"]))
        assert (await hanging.read()).file_id == "d"
        with pytest.raises(grpc.aio.AioRpcError) as shed:
            async for _ in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["e"])):
                pass
        assert shed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        during = await asyncio.to_thread(scrape, port)
        assert value(during, "cqrs_grpc_streams_in_flight", **process) == 1
        hanging.cancel()

        async def cancelled_counted() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
            while True:
                samples = await asyncio.to_thread(scrape, port)
                if value(samples, "grpc_server_handled_total", **process, grpc_code="CANCELLED"):
                    return samples
                await asyncio.sleep(0.02)

        after = await asyncio.wait_for(cancelled_counted(), 10)

    assert value(after, "grpc_server_started_total", **process) == 3
    for code in ("OK", "CANCELLED", "RESOURCE_EXHAUSTED"):
        assert value(after, "grpc_server_handled_total", **process, grpc_code=code) == 1, code
    assert value(after, "grpc_server_msg_received_total", **process) == 3
    assert value(after, "grpc_server_msg_sent_total", **process) == 4  # a, b, c and d
    assert value(after, "grpc_server_handling_seconds_count", **process) == 3
    assert value(after, "cqrs_grpc_streams_shed_total", **process) == 1
    assert value(after, "cqrs_grpc_streams_in_flight", **process) == 0
    assert value(after, "grpc_server_started_total", **status) == 1
    assert value(after, "grpc_server_handled_total", **status, grpc_code="NOT_FOUND") == 1
    assert value(after, "grpc_server_msg_received_total", **status) == 1
    assert value(after, "grpc_server_msg_sent_total", **status) == 0
    assert value(after, "cqrs_event_handler_seconds_count", handler="FlakyRecorder") == 4
    assert value(after, "cqrs_event_handler_failures_total", handler="FlakyRecorder") == 1
    labels = {label for (_, pairs) in after for label, _ in pairs}
    assert labels <= {
        "grpc_type",
        "grpc_service",
        "grpc_method",
        "grpc_code",
        "handler",
        "le",
        "event",
        "group",
    }


async def test_a_long_stream_shows_its_sent_messages_while_it_runs() -> None:
    """Sent messages reach the counter every SENT_BATCH messages, not only when the stream ends."""
    app = app_with(HangingHandler)
    app.settings = dataclasses.replace(app.settings, metrics_address="127.0.0.1:0")
    process = {
        "grpc_type": "server_stream",
        "grpc_service": "sample.files.v1.FileService",
        "grpc_method": "ProcessFiles",
    }
    before_hang = 2 * SENT_BATCH + 6
    async with serve_for_test(app) as served:
        exposition = served.running.telemetry.exposition if served.running.telemetry else None
        assert exposition is not None
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        ids = [f"f{n}" for n in range(before_hang)] + ["hang"]
        call = stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=ids))
        for _ in range(before_hang):
            await call.read()
        during = await asyncio.to_thread(scrape, exposition.port)
        assert value(during, "grpc_server_msg_sent_total", **process) == 2 * SENT_BATCH
        call.cancel()

        async def all_counted() -> float:
            while True:
                samples = await asyncio.to_thread(scrape, exposition.port)
                if value(samples, "grpc_server_handled_total", **process, grpc_code="CANCELLED"):
                    return value(samples, "grpc_server_msg_sent_total", **process)
                await asyncio.sleep(0.02)

        assert await asyncio.wait_for(all_counted(), 10) == before_hang


def test_a_bad_metrics_address_is_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--app", "pkg.mod:app", "--metrics-address", "9464"])
    assert exited.value.code == 2
    assert "--metrics-address (CQRS_GRPC_METRICS_ADDRESS): bad address '9464'" in capsys.readouterr().err


def test_the_grafana_dashboard_queries_only_metrics_the_server_exports() -> None:
    dashboard = json.loads((Path(__file__).parents[2] / "docs" / "grafana-dashboard.json").read_text())
    queried = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(?:grpc_server|cqrs)_\w+", target["expr"])
    }
    exported = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in Metrics(CollectorRegistry()).registry.collect()
    }
    assert queried and queried <= exported, queried - exported
    assert exported <= queried, f"not on the dashboard: {exported - queried}"


async def test_client_and_bidi_streams_count_each_message_read_and_written() -> None:
    app = served_shapes(Probe())
    app.settings = dataclasses.replace(app.settings, metrics_address="127.0.0.1:0")

    async def chunks() -> typing.AsyncIterator[shapes_pb2.Chunk]:
        for size in (1, 2, 3):
            yield shapes_pb2.Chunk(data=b"x" * size)

    async with serve_for_test(app) as served:
        stub = served.stub(shapes_pb2_grpc.ShapesStub)
        assert (await stub.Sum(chunks(), timeout=10)).chunks == 3
        call = stub.Echo(timeout=10)
        for n in (1, 2):
            await call.write(shapes_pb2.Ping(n=n))
            assert (await call.read()).n == n * 10
        await call.done_writing()
        assert await call.code() is grpc.StatusCode.OK
        telemetry = served.running.telemetry
        assert telemetry is not None and telemetry.exposition is not None
        samples = await asyncio.to_thread(scrape, telemetry.exposition.port)
    service = {"grpc_service": "shapes.v1.Shapes"}
    summed = {**service, "grpc_type": "client_stream", "grpc_method": "Sum"}
    echoed = {**service, "grpc_type": "bidi_stream", "grpc_method": "Echo"}
    assert value(samples, "grpc_server_msg_received_total", **summed) == 3
    assert value(samples, "grpc_server_msg_sent_total", **summed) == 1
    assert value(samples, "grpc_server_msg_received_total", **echoed) == 2
    assert value(samples, "grpc_server_msg_sent_total", **echoed) == 2
    assert value(samples, "grpc_server_handled_total", **echoed, grpc_code="OK") == 1
