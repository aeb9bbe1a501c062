"""Each yield is one message; events run between messages; cancellation, deadlines, context reach handlers."""

from __future__ import annotations

import asyncio
import typing
from datetime import UTC, datetime

import grpc
import pytest
from sample.files.v1 import files_pb2, files_pb2_grpc

import cqrs
from cqrs.events.event import Event
from cqrs.requests.request_handler import StreamingRequestHandler
from server import current_rpc, maybe_current_rpc
from server.testing import ServedApp, serve_for_test
from tests.server.helpers import app_with
from tests.server.sample import FileProcessedEvent, FileProcessedResult, FileStatusStore, ProcessFilesCommand


async def test_each_yield_is_one_message_in_order(demo_stub: files_pb2_grpc.FileServiceStub) -> None:
    ids = [f"file-{n}" for n in range(7)]
    before = datetime.now(UTC)
    results = [r async for r in demo_stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=ids))]
    assert [r.file_id for r in results] == ids
    assert [(r.index, r.total) for r in results] == [(n, 7) for n in range(1, 8)]
    assert {r.status for r in results} == {"completed"}
    assert all(r.processed_at.ToDatetime(tzinfo=UTC) >= before.replace(microsecond=0) for r in results)


async def test_events_feed_the_query_side(
    demo_stub: files_pb2_grpc.FileServiceStub, store: FileStatusStore
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await demo_stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id="a"))
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    [result] = [r async for r in demo_stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["a"]))]
    status = await demo_stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id="a"))
    assert (status.file_id, status.status) == ("a", "completed")
    assert status.HasField("processed_at")
    assert status.processed_at == result.processed_at


class Seen:
    """Shared with handlers through the container: what the event handlers have handled so far."""

    def __init__(self) -> None:
        self.handled: list[str] = []


class CheckingHandler(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    """Checks item k's event was handled before producing item k+1; records one more event at the end."""

    def __init__(self, seen: Seen) -> None:
        self._seen = seen
        self._events: list[Event] = []

    @property
    def events(self) -> list[Event]:
        return self._events.copy()

    def clear_events(self) -> None:
        self._events.clear()

    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        for index, file_id in enumerate(request.file_ids):
            in_order = self._seen.handled == request.file_ids[:index]
            now = datetime.now(UTC)
            self._events.append(FileProcessedEvent(file_id=file_id, status="completed", processed_at=now))
            yield FileProcessedResult(file_id=file_id, status="ok" if in_order else "early", processed_at=now)
        self._events.append(FileProcessedEvent(file_id="after-last", status="completed", processed_at=now))


class RecordSeen(cqrs.EventHandler[FileProcessedEvent]):
    def __init__(self, seen: Seen) -> None:
        self._seen = seen

    async def handle(self, event: FileProcessedEvent) -> None:
        await asyncio.sleep(0.001)  # a handler that really awaits, so ordering is not an accident
        self._seen.handled.append(event.file_id)


@pytest.mark.parametrize("timing", ["with_send", "before_send"])
async def test_events_are_handled_between_messages_and_after_the_last(timing: str) -> None:
    seen = Seen()
    container = cqrs.Container()
    container.register_instance(Seen, seen)
    app = app_with(
        CheckingHandler, events=[(FileProcessedEvent, RecordSeen)], container=container, event_timing=timing
    )
    async with serve_for_test(app) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        ids = ["a", "b", "c", "d"]
        results = [r async for r in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=ids))]
    assert [r.status for r in results] == ["ok"] * 4
    assert seen.handled == [*ids, "after-last"]


class Probe:
    """What a blocking handler observed about its own end."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.closed = asyncio.Event()
        self.start_task: asyncio.Task[typing.Any] | None = None
        self.close_task: asyncio.Task[typing.Any] | None = None
        self.rpc_in_finally: object = None
        self.remaining: float | None = None
        self.closed_at = 0.0


class BlockingHandler(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    """Yields one result per id, then waits forever; reports how it was closed."""

    def __init__(self, probe: Probe) -> None:
        self._probe = probe

    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        probe = self._probe
        probe.start_task = asyncio.current_task()
        probe.remaining = current_rpc().time_remaining()
        try:
            for file_id in request.file_ids:
                yield FileProcessedResult(file_id=file_id, status="completed", processed_at=datetime.now(UTC))
            probe.started.set()
            await asyncio.Event().wait()
        finally:
            probe.close_task = asyncio.current_task()
            probe.rpc_in_finally = maybe_current_rpc()
            probe.closed_at = asyncio.get_running_loop().time()
            probe.closed.set()


async def _served_blocking(probe: Probe) -> typing.AsyncContextManager[ServedApp]:
    container = cqrs.Container()
    container.register_instance(Probe, probe)
    return serve_for_test(app_with(BlockingHandler, container=container))


@pytest.mark.parametrize("messages", [0, 1, 3])
async def test_client_cancel_closes_the_handler_in_the_rpc_task(messages: int) -> None:
    probe = Probe()
    async with await _served_blocking(probe) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        call = stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=[f"f{n}" for n in range(messages)]))
        for _ in range(messages):
            await call.read()
        await asyncio.wait_for(probe.started.wait(), 5)
        cancelled_at = asyncio.get_running_loop().time()
        call.cancel()
        await asyncio.wait_for(probe.closed.wait(), 5)
        assert probe.closed_at - cancelled_at < 0.1
        assert probe.close_task is probe.start_task
        assert probe.rpc_in_finally is not None
        # the server keeps serving
        with pytest.raises(grpc.aio.AioRpcError) as after:
            await stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id="nope"))
        assert after.value.code() is grpc.StatusCode.NOT_FOUND


class EventGate:
    """Holds each event handler until the test opens it."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.opened = asyncio.Event()
        self.handled: list[str] = []


class GatedRecord(cqrs.EventHandler[FileProcessedEvent]):
    def __init__(self, gate: EventGate) -> None:
        self._gate = gate

    async def handle(self, event: FileProcessedEvent) -> None:
        self._gate.started.set()
        await self._gate.opened.wait()
        self._gate.handled.append(event.file_id)


class EventfulProbe(Probe):
    def __init__(self) -> None:
        super().__init__()
        self.produced: list[str] = []


class EventfulHandler(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    """Records one event per item; reports what it produced and where it was closed."""

    def __init__(self, probe: EventfulProbe) -> None:
        self._probe = probe

    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        probe = self._probe
        probe.start_task = asyncio.current_task()
        try:
            for file_id in request.file_ids:
                probe.produced.append(file_id)
                now = datetime.now(UTC)
                self.add_event(FileProcessedEvent(file_id=file_id, status="completed", processed_at=now))
                yield FileProcessedResult(file_id=file_id, status="completed", processed_at=now)
        finally:
            probe.close_task = asyncio.current_task()
            probe.closed.set()


async def test_a_client_cancel_while_an_items_events_run_finishes_them_then_closes_the_handler() -> None:
    # the server runs an item's events while grpc's write of it completes: a cancel arriving then
    # must still finish the events, cancel the write cleanly and close the handler in the RPC task
    # (a regression guard for that path: the same holds when events run after the write)
    probe, gate = EventfulProbe(), EventGate()
    container = cqrs.Container()
    container.register_instance(EventfulProbe, probe)
    container.register_instance(EventGate, gate)
    app = app_with(
        EventfulHandler,
        events=[(FileProcessedEvent, GatedRecord)],
        container=container,
        event_timing="with_send",
    )
    async with serve_for_test(app) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        call = stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["a", "b", "c"]))
        try:
            assert (await call.read()).file_id == "a"
            await asyncio.wait_for(gate.started.wait(), 5)
            call.cancel()
            rpc_task = probe.start_task
            assert rpc_task is not None
            async with asyncio.timeout(5):
                while not rpc_task.cancelling():  # noqa: ASYNC110 - grpc cancels the task, no event to wait on
                    await asyncio.sleep(0.001)
            assert not probe.closed.is_set()  # item a's events are being finished first
        finally:
            gate.opened.set()
        await asyncio.wait_for(probe.closed.wait(), 5)
        assert gate.handled == ["a"] and probe.produced == ["a"]
        assert probe.close_task is rpc_task
        assert [
            r.file_id async for r in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["d"]))
        ] == ["d"]
        assert gate.handled == ["a", "d"]


class FailOnBad(cqrs.EventHandler[FileProcessedEvent]):
    async def handle(self, event: FileProcessedEvent) -> None:
        if event.file_id == "bad":
            raise RuntimeError("the audit log refused the file")


@pytest.mark.parametrize("failing_item", [0, 2])
async def test_events_failing_during_a_write_end_the_stream_with_internal(failing_item: int) -> None:
    # under event_failure_policy="fail" the failure ends the call, even on the first item, whose
    # write also carries the call's headers: it is finished first, then the status is sent
    probe = EventfulProbe()
    container = cqrs.Container()
    container.register_instance(EventfulProbe, probe)
    ids = [f"f{n}" for n in range(failing_item)] + ["bad", "never"]

    app = app_with(
        EventfulHandler,
        events=[(FileProcessedEvent, FailOnBad)],
        container=container,
        event_failure_policy="fail",
        event_timing="with_send",
    )
    async with serve_for_test(app) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        received: list[str] = []
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            async for result in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=ids), timeout=5):
                received.append(result.file_id)
        assert failed.value.code() is grpc.StatusCode.INTERNAL, failed.value
        assert received == ids[: failing_item + 1] and "never" not in probe.produced
        assert [
            r.file_id async for r in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["ok"]))
        ] == ["ok"]


@pytest.mark.parametrize("failing_item", [0, 2])
async def test_before_send_an_item_whose_events_fail_is_never_sent(failing_item: int) -> None:
    # the default timing: an item is written only after its events were handled, so a client never
    # holds a result whose effects failed
    probe = EventfulProbe()
    container = cqrs.Container()
    container.register_instance(EventfulProbe, probe)
    ids = [f"f{n}" for n in range(failing_item)] + ["bad", "never"]
    app = app_with(
        EventfulHandler,
        events=[(FileProcessedEvent, FailOnBad)],
        container=container,
        event_failure_policy="fail",
    )
    async with serve_for_test(app) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        received: list[str] = []
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            async for result in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=ids), timeout=5):
                received.append(result.file_id)
        assert failed.value.code() is grpc.StatusCode.INTERNAL, failed.value
        assert received == ids[:failing_item] and "never" not in probe.produced


async def test_deadline_ends_the_stream_and_closes_the_handler() -> None:
    probe = Probe()
    async with await _served_blocking(probe) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        call = stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["a"]), timeout=0.3)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async for _ in call:
                pass
        assert ended.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.wait_for(probe.closed.wait(), 5)
        # the handler sees the client's deadline; grpc-timeout on the wire is rounded up, so allow 10 ms
        assert probe.remaining is not None and 0 < probe.remaining <= 0.31
        assert probe.close_task is probe.start_task


class EchoMetadataHandler(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    """Answers with what the per-RPC context says about the call."""

    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        rpc = current_rpc()
        tenant = rpc.metadata.get("x-tenant", "none")
        deadline = "none" if rpc.time_remaining() is None else "set"
        yield FileProcessedResult(
            file_id=rpc.method, status=f"{tenant}/{deadline}", processed_at=datetime.now(UTC)
        )


async def test_handler_reads_metadata_method_and_deadline_from_the_rpc_context() -> None:
    async with serve_for_test(app_with(EchoMetadataHandler)) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        command = files_pb2.ProcessFilesCommand(file_ids=["a"])
        [with_meta] = [
            r async for r in stub.ProcessFiles(command, metadata=(("x-tenant", "acme"),), timeout=30)
        ]
        [without] = [r async for r in stub.ProcessFiles(command)]
    assert with_meta.file_id == "/sample.files.v1.FileService/ProcessFiles"
    assert with_meta.status == "acme/set"
    assert without.status == "none/none"
