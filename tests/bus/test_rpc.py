"""The bus behind a real gRPC server: while NATS is down a streaming RPC ends UNAVAILABLE before the item
whose events could not be stored, and after NATS is back the service resumes."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import grpc
import pytest
from sample.files.v1 import files_pb2, files_pb2_grpc

import cqrs
from cqrs.bus import BusConfig, NatsServer
from cqrs.requests.request_handler import StreamingRequestHandler
from server.testing import serve_for_test
from tests.bus.helpers import broker, file_changed
from tests.server.helpers import app_with, error_info, rich_status
from tests.server.sample import FileProcessedResult, ProcessFilesCommand

pytestmark = pytest.mark.timeout(30)


class NotifyingHandler(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    """One result per file, each with a notification event for the bus."""

    def __init__(self) -> None:
        self._events: list[cqrs.Event] = []

    @property
    def events(self) -> list[cqrs.Event]:
        return self._events.copy()

    def clear_events(self) -> None:
        self._events.clear()

    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        total = len(request.file_ids)
        for index, file_id in enumerate(request.file_ids, start=1):
            self._events.append(file_changed(file_id, index))
            yield FileProcessedResult(
                file_id=file_id, status="completed", processed_at=datetime.now(UTC), index=index, total=total
            )


async def test_while_nats_is_down_the_rpc_ends_unavailable_and_resumes_after(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    publisher = broker(nats_server.url, bus_config, publish_timeout=0.5, ack_timeout=0.5)
    try:
        async with serve_for_test(app_with(NotifyingHandler, message_broker=publisher)) as served:
            stub = served.stub(files_pb2_grpc.FileServiceStub)

            async def process(*file_ids: str) -> list[str]:
                command = files_pb2.ProcessFilesCommand(file_ids=list(file_ids))
                return [r.file_id async for r in stub.ProcessFiles(command)]

            assert await process("a", "b") == ["a", "b"]
            nats_server.stop()
            received: list[str] = []
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                async for result in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["c"])):
                    received.append(result.file_id)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE and received == []
            info = error_info(rich_status(raised.value))
            assert (info.reason, dict(info.metadata)) == ("EVENT_BUS_UNAVAILABLE", {})
            # nothing internal on the wire: no exception name, event class or id, subject or address
            assert raised.value.details() == "the event bus did not store the event in time"
            nats_server.start()
            assert await process("d") == ["d"]
    finally:
        await publisher.close()
