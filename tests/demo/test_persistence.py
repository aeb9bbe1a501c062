"""A restart on the same data directory finds the files, their status and the audit log intact."""

from __future__ import annotations

from pathlib import Path

from demo.files.v1 import files_pb2
from tests.demo.conftest import ServeDemo


async def test_files_status_and_audit_survive_a_restart(serve_demo: ServeDemo, tmp_path: Path) -> None:
    data_dir = tmp_path / "kept"
    async with serve_demo(data_dir=data_dir) as served:
        a = await served.upload("a.txt", b"a\n")
        await served.process(a.file_id)
        rows_before = await served.demo.store.audit_rows()
        served.demo.store.close()  # what a clean shutdown does
    assert (data_dir / "demo.sqlite3").exists()

    async with serve_demo(data_dir=data_dir) as served:
        [listed] = (await served.stub.ListFiles(files_pb2.ListFilesQuery())).files
        assert (listed.file_id, listed.name, listed.sha256) == (a.file_id, "a.txt", a.sha256)
        status = await served.stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id=a.file_id))
        assert status.status == "completed"
        assert await served.demo.store.audit_rows() == rows_before
        [again] = await served.process(a.file_id)  # the blob is there too
        assert again.status == "completed"
        assert [r.seq for r in await served.demo.store.audit_rows()] == [1, 2, 3]
