"""The replica App in process: a result is released only after its state, audit and outbox committed together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import psycopg
import pytest

from cqrs.bus import BusConfig, JetStreamBroker, NatsServer, field_key
from demo.files.v1 import files_pb2, files_pb2_grpc
from examples.files.pgapp import build_replica_demo
from server.testing import ServedApp, serve_for_test

# Makes every outbox insert fail the way a database going down does (SQLSTATE 57P01, admin_shutdown).
FAIL_OUTBOX = """
CREATE FUNCTION fail_outbox() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'the database went away' USING ERRCODE = '57P01'; END $$;
CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION fail_outbox();
"""


@pytest.fixture
async def served(database: str, nats: NatsServer, upload_dir: Path) -> AsyncIterator[ServedApp]:
    broker = JetStreamBroker(
        nats.url, config=BusConfig(stream="T_APP", prefix="tapp.events"), key=field_key("file_id")
    )
    app, _, _ = build_replica_demo(database, upload_dir, broker=broker)
    async with serve_for_test(app) as served:
        yield served


def _rows(database: str, table: str) -> int:
    with psycopg.connect(database) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else -1


async def test_an_upload_whose_commit_fails_is_not_acknowledged_and_leaves_nothing(
    served: ServedApp, database: str
) -> None:
    stub = files_pb2_grpc.FileServiceStub(served.channel)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(FAIL_OUTBOX)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UploadFile(files_pb2.UploadFileCommand(name="a.txt", content=b"a"), timeout=10)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert [_rows(database, table) for table in ("files", "audit", "outbox")] == [0, 0, 0]


async def test_a_result_whose_commit_fails_is_not_sent(served: ServedApp, database: str) -> None:
    stub = files_pb2_grpc.FileServiceStub(served.channel)
    info = await stub.UploadFile(files_pb2.UploadFileCommand(name="a.txt", content=b"a"), timeout=10)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(FAIL_OUTBOX)
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for result in stub.ProcessFiles(
            files_pb2.ProcessFilesCommand(file_ids=[info.file_id]), timeout=10
        ):
            received.append(result)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert received == []
    status = await stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id=info.file_id), timeout=10)
    assert status.status == "uploaded"
    assert _rows(database, "audit") == 1
