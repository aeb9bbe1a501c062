"""ProcessFiles: per-id results in order, not_found and failed per item, chunked reads off the loop."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import grpc
import pytest

from demo.files.v1 import files_pb2
from examples.files.processing import digest_file, read_chunk
from tests.demo.conftest import Served, ServeDemo


async def test_results_carry_digest_line_count_and_progress_in_order(served: Served) -> None:
    a = await served.upload("a.txt", b"alpha\nbeta\ngamma")
    b = await served.upload("b.txt", b"")
    before = datetime.now(UTC).replace(microsecond=0)
    results = await served.process(a.file_id, b.file_id, a.file_id)
    assert [(r.file_id, r.status, r.index, r.total) for r in results] == [
        (a.file_id, "completed", 1, 3),
        (b.file_id, "completed", 2, 3),
        (a.file_id, "completed", 3, 3),
    ]
    first = results[0]
    assert (first.name, first.size, first.line_count) == ("a.txt", 16, 3)
    assert first.sha256 == hashlib.sha256(b"alpha\nbeta\ngamma").hexdigest()
    assert (results[1].size, results[1].line_count) == (0, 0)
    assert all(r.processed_at.ToDatetime(tzinfo=UTC) >= before for r in results)


async def test_unknown_and_path_like_ids_are_per_item_not_found(served: Served) -> None:
    known = await served.upload("k.txt", b"k\n")
    hostile = [
        "nope",
        "../data/demo.sqlite3",
        "/etc/passwd",
        known.sha256,  # a content address is not an id
        f"blobs/{known.sha256[:2]}/{known.sha256}",
        known.file_id + "/..",
    ]
    results = await served.process(*hostile, known.file_id)
    assert [r.status for r in results] == ["not_found"] * len(hostile) + ["completed"]
    assert [r.file_id for r in results] == [*hostile, known.file_id]
    assert all(r.size == 0 and r.sha256 == "" for r in results[:-1])


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
async def test_damaged_content_is_a_per_item_failure(served: Served, damage: str) -> None:
    bad = await served.upload("bad.txt", b"original\n")
    good = await served.upload("good.txt", b"fine\n")
    blob = served.data_dir / "blobs" / bad.sha256[:2] / bad.sha256
    if damage == "corrupt":
        blob.write_bytes(b"tampered\n")
    else:
        blob.unlink()
    results = await served.process(bad.file_id, good.file_id)
    assert [r.status for r in results] == ["failed", "completed"]
    assert results[0].error in {
        "the stored content does not match its digest",
        "the stored content cannot be read",
    }
    assert str(served.data_dir) not in results[0].error
    status = await served.stub.GetFileStatus(files_pb2.GetFileStatusQuery(file_id=bad.file_id))
    assert status.status == "failed"


async def test_an_empty_id_list_is_invalid_argument(served: Served) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.process()
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_big_files_are_read_in_chunks_while_other_streams_progress(
    serve_demo: ServeDemo, tmp_path: Path
) -> None:
    """The read of chunk 2 blocks its thread until another stream has completed meanwhile.

    If chunks were read on the event loop, the other stream could not run and the read would
    give up after its timeout: ``other_finished_first`` would be False.
    """
    chunk = 256 * 1024
    content = bytes(range(256)) * (3 * 1024 * 1024 // 256)  # 3 MiB: 12 chunks
    reads: list[int] = []
    release = threading.Event()
    parked = threading.Event()
    other_finished_first: list[bool] = []

    def gated_read(file: BinaryIO, size: int) -> bytes:
        reads.append(size)
        if len(reads) == 2:
            parked.set()
            other_finished_first.append(release.wait(timeout=10))
        return read_chunk(file, size)

    async with serve_demo(max_upload_bytes=4 * 1024 * 1024, chunk_bytes=chunk, read=gated_read) as served:
        big = await served.upload("big.bin", content)
        small = await served.upload("small.txt", b"s\n")
        big_stream = asyncio.create_task(served.process(big.file_id))
        async with asyncio.timeout(10):
            assert await asyncio.to_thread(parked.wait, 10)  # the big stream is parked in chunk 2
            reads_before_other = len(reads)
            [other] = await served.process(small.file_id)  # small file: reads 1 chunk + EOF
            release.set()
            [result] = await big_stream
        assert other.status == "completed" and other_finished_first == [True]
        assert reads_before_other == 2
        assert (result.status, result.size) == ("completed", len(content))
        assert result.sha256 == hashlib.sha256(content).hexdigest()
        assert reads.count(chunk) == (len(content) // chunk + 1) + (1 + 1)  # big: 12 + EOF; small: 1 + EOF


@pytest.mark.parametrize(
    ("content", "lines"), [(b"", 0), (b"a", 1), (b"a\n", 1), (b"a\nb", 2), (b"\n\n", 2), (b"x\r\ny\r\n", 2)]
)
async def test_line_count_counts_a_last_line_without_newline(
    tmp_path: Path, content: bytes, lines: int
) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    digest = await digest_file(path, chunk_bytes=1)  # one byte per chunk: boundaries everywhere
    assert (digest.size, digest.line_count, digest.sha256) == (
        len(content),
        lines,
        hashlib.sha256(content).hexdigest(),
    )
