"""One structured line per RPC: method, status, message count, duration; never a payload."""

from __future__ import annotations

import contextlib
import json
import logging

import grpc
import pytest
from sample.files.v1 import files_pb2, files_pb2_grpc

from server.observability import JsonFormatter
from tests.unit._support import wait_for


def rpc_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "server.rpc"]


async def test_one_line_per_rpc_with_method_status_count_and_duration(
    demo_stub: files_pb2_grpc.FileServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.rpc")
    secret = "customer-4711-private"
    [r async for r in demo_stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=[secret, "b"]))]
    with pytest.raises(grpc.aio.AioRpcError):
        await demo_stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id=secret + "-missing"))
    # the server writes an RPC's line when its handler has finished, which can be just after the
    # client has the status; on a timeout the assertion below shows what was written
    with contextlib.suppress(TimeoutError):
        await wait_for(lambda: len(rpc_lines(caplog)) >= 2, timeout=5)
    records = rpc_lines(caplog)
    assert [(r.rpc_method, r.rpc_status, r.rpc_messages) for r in records] == [  # type: ignore[attr-defined]
        ("/sample.files.v1.FileService/ProcessFiles", "OK", 2),
        ("/sample.files.v1.FileService/GetFileStatus", "NOT_FOUND", 0),
    ]
    assert all(r.rpc_duration_ms >= 0 for r in records)  # type: ignore[attr-defined]
    for record in records:
        line = JsonFormatter().format(record)
        assert secret not in line
        parsed = json.loads(line)
        assert parsed["rpc_method"] == record.rpc_method  # type: ignore[attr-defined]
        assert parsed["level"] == "info"
