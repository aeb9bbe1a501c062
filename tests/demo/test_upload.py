"""UploadFile and ListFiles: opaque ids, content-addressed blobs, the size limit, hostile names."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import grpc
import pytest

from demo.files.v1 import files_pb2
from examples.files.app import UPLOAD_OVERHEAD_BYTES
from tests.demo.conftest import Served, ServeDemo
from tests.server.helpers import error_info, rich_status


def _files_under(root: object) -> set[str]:
    from pathlib import Path

    base = Path(str(root))
    return {str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()}


async def test_upload_stores_content_addressed_blobs_behind_opaque_ids(served: Served) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    first = await served.upload("notes.txt", b"one\ntwo\n")
    again = await served.upload("copy.txt", b"one\ntwo\n")
    digest = hashlib.sha256(b"one\ntwo\n").hexdigest()
    assert (first.name, first.size, first.sha256) == ("notes.txt", 8, digest)
    assert re.fullmatch(r"f_[0-9a-f]{32}", first.file_id) and first.file_id != again.file_id
    assert "notes" not in first.file_id and digest not in first.file_id
    assert first.uploaded_at.ToDatetime(tzinfo=UTC) >= before
    blobs = {p for p in _files_under(served.data_dir) if p.startswith("blobs/")}
    assert blobs == {f"blobs/{digest[:2]}/{digest}"}  # identical content: one blob
    assert (served.data_dir / "blobs" / digest[:2] / digest).read_bytes() == b"one\ntwo\n"


async def test_list_files_returns_every_upload_oldest_first(served: Served) -> None:
    assert list((await served.stub.ListFiles(files_pb2.ListFilesQuery())).files) == []
    uploaded = [await served.upload(f"f{n}.txt", b"x" * n) for n in range(3)]
    listed = (await served.stub.ListFiles(files_pb2.ListFilesQuery())).files
    assert [(f.file_id, f.name, f.size) for f in listed] == [(u.file_id, u.name, u.size) for u in uploaded]
    assert all(f.uploaded_at == u.uploaded_at for f, u in zip(listed, uploaded, strict=True))


async def test_an_upload_past_the_limit_is_resource_exhausted_and_writes_nothing(served: Served) -> None:
    limit = served.demo.settings.max_upload_bytes
    assert (await served.upload("exact.bin", b"e" * limit)).size == limit
    before = _files_under(served.data_dir)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.upload("big.bin", b"b" * (limit + 1))
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (
        refused.value.details() == f"file 'big.bin' is {limit + 1} bytes; the upload limit is {limit} bytes"
    )
    info = error_info(rich_status(refused.value))
    assert info.reason == "UPLOAD_TOO_LARGE" and info.metadata["limit_bytes"] == str(limit)
    assert _files_under(served.data_dir) - before <= {"demo.sqlite3-wal", "demo.sqlite3-shm"}
    assert len((await served.stub.ListFiles(files_pb2.ListFilesQuery())).files) == 1


async def test_the_receive_limit_follows_the_upload_limit(serve_demo: ServeDemo) -> None:
    limit = 5 * 1024 * 1024  # above grpc's default 4 MiB receive limit
    async with serve_demo(max_upload_bytes=limit) as served:
        assert served.demo.app.settings.max_receive_message_bytes >= limit + UPLOAD_OVERHEAD_BYTES
        assert (await served.upload("five-mib.bin", b"5" * limit)).size == limit


@pytest.mark.parametrize(
    "name", ["../../escaped.txt", "/etc/passwd", "..", "blobs/../../x", "C:\\Windows\\win.ini"]
)
async def test_names_are_metadata_never_paths(served: Served, name: str) -> None:
    outside_before = _files_under(served.data_dir.parent)
    info = await served.upload(name, b"payload")
    [listed] = (await served.stub.ListFiles(files_pb2.ListFilesQuery())).files
    assert (listed.name, info.name) == (name, name)
    created = _files_under(served.data_dir.parent) - outside_before
    assert all(path.startswith("data/") for path in created), created
    assert not any(part in path for path in created for part in ("escaped", "passwd", "win.ini"))


@pytest.mark.parametrize(
    ("name", "problem"),
    [("", "must not be blank"), ("a\x00b", "control characters"), ("n" * 256, "at most 255")],
)
async def test_bad_names_are_invalid_argument(served: Served, name: str, problem: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.upload(name, b"x")
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert problem in refused.value.details()
