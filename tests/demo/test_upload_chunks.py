"""UploadFileChunks: content of any size streamed in pieces, the limit as bytes arrive, nothing left behind."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import grpc
import pytest

from clients.python import AsyncFileClient, FileServiceError
from demo.files.v1 import files_pb2
from tests.demo.conftest import Served, ServeDemo
from tests.server.helpers import bad_request, rich_status

KiB = 1024
MiB = 1024 * KiB
SQLITE = {"demo.sqlite3", "demo.sqlite3-wal", "demo.sqlite3-shm"}


def _files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - SQLITE


def _messages(name: str, content: bytes, chunk_bytes: int = 64 * KiB) -> list[files_pb2.UploadFileChunk]:
    pieces = [content[at : at + chunk_bytes] for at in range(0, len(content), chunk_bytes)]
    return [
        files_pb2.UploadFileChunk(name=name),
        *(files_pb2.UploadFileChunk(data=p) for p in pieces),
        files_pb2.UploadFileChunk(sha256=hashlib.sha256(content).hexdigest()),
    ]


async def _stream(messages: Iterable[files_pb2.UploadFileChunk]) -> AsyncIterator[files_pb2.UploadFileChunk]:
    for message in messages:
        yield message


async def _upload(served: Served, messages: Iterable[files_pb2.UploadFileChunk]) -> files_pb2.FileInfo:
    return await served.stub.UploadFileChunks(_stream(messages), timeout=30)


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for something the server does on its own, such as deleting a temporary file."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - the data directory has no event to wait on
            await asyncio.sleep(0.01)


async def _eventually_empty(directory: Path) -> None:
    await _until(lambda: not any(directory.iterdir()))


async def test_a_file_larger_than_the_message_limit_uploads_in_chunks(serve_demo: ServeDemo) -> None:
    content = b"".join(b"line %d of a file larger than one message\n" % n for n in range(150_000))
    assert 6 * MiB < len(content) < 7 * MiB  # grpc's default message limit is 4 MiB
    digest = hashlib.sha256(content).hexdigest()
    async with serve_demo(max_upload_bytes=8 * MiB) as served:
        info = await _upload(served, _messages("big.txt", content))
        assert (info.name, info.size, info.sha256) == ("big.txt", len(content), digest)
        [result] = await served.process(info.file_id)
        assert (result.status, result.size, result.sha256, result.line_count) == (
            "completed",
            len(content),
            digest,
            150_000,
        )
        assert _files_under(served.data_dir) == {f"blobs/{digest[:2]}/{digest}"}  # tmp/ is empty
        assert (served.data_dir / "blobs" / digest[:2] / digest).read_bytes() == content
        rows = await served.demo.store.audit_rows()
        assert [(r.kind, r.file_id, r.detail["size"]) for r in rows][:1] == [
            ("file_uploaded", info.file_id, len(content))
        ]


async def test_the_result_is_the_same_as_upload_files_and_blobs_are_shared(served: Served) -> None:
    whole = await served.upload("whole.txt", b"one\ntwo\n")
    streamed = await _upload(served, _messages("streamed.txt", b"one\ntwo\n", chunk_bytes=3))
    assert (streamed.size, streamed.sha256) == (whole.size, whole.sha256)
    assert streamed.file_id != whole.file_id and streamed.file_id.startswith("f_")
    empty = await _upload(served, _messages("empty.txt", b""))
    assert (empty.size, empty.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert len(_files_under(served.data_dir)) == 2  # one blob per content, nothing in tmp/
    listed = (await served.stub.ListFiles(files_pb2.ListFilesQuery())).files
    assert [f.name for f in listed] == ["whole.txt", "streamed.txt", "empty.txt"]


async def test_crossing_the_limit_ends_the_call_at_once_and_the_rest_is_never_read(served: Served) -> None:
    limit = served.demo.settings.max_upload_bytes  # 64 KiB
    assert (await _upload(served, _messages("exact.bin", b"e" * limit, 16 * KiB))).size == limit
    before = _files_under(served.data_dir)

    class Endless(io.RawIOBase):
        """Content without end: the server must decide before the total is known."""

        def read(self, size: int = -1) -> bytes:
            return b"b" * size

    sent: list[int] = []
    # The SDK, not a raw grpc.aio call: a write in flight as the server ends the call can replace
    # the server's status with INTERNAL in grpc.aio (grpc/grpc#36066); the SDK keeps the server's.
    async with AsyncFileClient(served.served.address) as files:
        with pytest.raises(FileServiceError) as refused:
            await files.upload(
                "endless.bin", Endless(), chunk_bytes=16 * KiB, progress=lambda n, _: sent.append(n)
            )
    assert sent[-1] < 4 * MiB  # the client was stopped mid-stream: the server did not read the rest
    assert refused.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (
        refused.value.details
        == f"file 'endless.bin' is more than {limit} bytes; the upload limit is {limit} bytes"
    )
    assert refused.value.reason == "UPLOAD_TOO_LARGE"
    assert refused.value.metadata["size_bytes"] == str(
        limit + 16 * KiB
    )  # refused at the chunk that crossed it
    await _eventually_empty(served.data_dir / "tmp")
    assert _files_under(served.data_dir) == before
    assert [r.file_id for r in await served.demo.store.audit_rows()] == [
        f.file_id for f in (await served.stub.ListFiles(files_pb2.ListFilesQuery())).files
    ]  # one row: the exact upload's


@pytest.mark.parametrize("ending", ["cancel", "deadline"])
async def test_a_cancel_or_deadline_mid_upload_leaves_no_file_and_no_event(
    served: Served, ending: str
) -> None:
    tmp = served.data_dir / "tmp"
    call = served.stub.UploadFileChunks(timeout=1.0 if ending == "deadline" else 30)
    await call.write(files_pb2.UploadFileChunk(name="half.bin"))
    for _ in range(2):
        await call.write(files_pb2.UploadFileChunk(data=b"h" * 16 * KiB))
    # the upload is under way: its temporary file holds both chunks
    await _until(lambda: any(p.stat().st_size == 32 * KiB for p in tmp.iterdir()))
    if ending == "cancel":
        call.cancel()
    with pytest.raises((asyncio.CancelledError, grpc.aio.AioRpcError)):
        await call
    if ending == "deadline":
        assert await call.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await _eventually_empty(tmp)
    assert _files_under(served.data_dir) == set()
    assert list((await served.stub.ListFiles(files_pb2.ListFilesQuery())).files) == []
    assert await served.demo.store.audit_rows() == []


NAME, DATA = files_pb2.UploadFileChunk(name="a"), files_pb2.UploadFileChunk(data=b"x")
DIGEST = files_pb2.UploadFileChunk(sha256=hashlib.sha256(b"x").hexdigest())


@pytest.mark.parametrize(
    ("messages", "field", "problem"),
    [
        ([], "name", "the first message must carry the file's name"),
        ([DATA, DIGEST], "name", "the first message must carry the file's name"),
        ([files_pb2.UploadFileChunk(name=""), DATA, DIGEST], "name", "must not be blank"),
        ([NAME, DATA, NAME, DIGEST], "data", "every message after the first must carry data"),
        ([NAME, files_pb2.UploadFileChunk(), DIGEST], "data", "must carry data"),
        ([NAME, DATA], "sha256", "the stream ended without the last message giving the content's SHA-256"),
        ([NAME, DIGEST, DATA], "sha256", "must come in the last message"),
        (
            [NAME, DATA, files_pb2.UploadFileChunk(sha256="0" * 64)],
            "sha256",
            f"the content received has the SHA-256 {DIGEST.sha256}, not {'0' * 64}",
        ),
    ],
    ids=[
        "empty-stream",
        "data-first",
        "blank-name",
        "second-name",
        "empty-message",
        "no-digest",
        "digest-early",
        "wrong-digest",
    ],
)
async def test_a_bad_or_incomplete_stream_is_invalid_argument_and_leaves_nothing(
    served: Served, messages: list[files_pb2.UploadFileChunk], field: str, problem: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _upload(served, messages)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert problem in (refused.value.details() or "")
    assert [v.field for v in bad_request(rich_status(refused.value)).field_violations] == [field]
    await _eventually_empty(served.data_dir / "tmp")
    assert _files_under(served.data_dir) == set()
    assert await served.demo.store.audit_rows() == []
