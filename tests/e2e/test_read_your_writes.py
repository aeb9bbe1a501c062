"""A client that holds a ProcessFiles result can rely on its effects: no stale GetFileStatus read.

The demo records the status in an event handler. Under the default timing (``before_send``) the result
for file k is written only after k's events were handled, so a GetFileStatus(k) sent the moment the
result arrives, on another connection, must already see that result's status and time. 500 tries.
"""

from __future__ import annotations

import grpc

from demo.files.v1 import files_pb2, files_pb2_grpc
from tests.e2e.conftest import DEMO_APP, start_server

FILES, ROUNDS = 50, 10  # 500 result/status pairs


async def test_every_result_is_visible_to_a_status_read_on_another_connection() -> None:
    server = await start_server("--app", DEMO_APP, "--grace", "2")
    try:
        async with (
            grpc.aio.insecure_channel(server.address) as processing,
            grpc.aio.insecure_channel(server.address) as reading,
        ):
            files = files_pb2_grpc.FileServiceStub(processing)
            status_of = files_pb2_grpc.FileServiceStub(reading).GetFileStatus
            ids = []
            for n in range(FILES):
                content = f"file {n}\n".encode()
                info = await files.UploadFile(files_pb2.UploadFileCommand(name=f"f{n}.txt", content=content))
                ids.append(info.file_id)
            await status_of(files_pb2.GetFileStatusQuery(file_id=ids[0]))  # the reading connection is up

            tries, stale = 0, []
            for _ in range(ROUNDS):
                async for result in files.ProcessFiles(
                    files_pb2.ProcessFilesCommand(file_ids=ids), timeout=30
                ):
                    status = await status_of(files_pb2.GetFileStatusQuery(file_id=result.file_id), timeout=5)
                    tries += 1
                    if (status.status, status.processed_at) != (result.status, result.processed_at):
                        stale.append((result.index, status.status, result.status))
        assert tries == FILES * ROUNDS
        assert stale == []
    finally:
        assert await server.terminate(10) == 0
