"""Streamed uploads (UploadFileChunks) by every client against ``python -m server``: the CLI's progress
bar, the async SDK cancelled mid-upload, the Node.js client (and its Ctrl-C), and the upload limit."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from clients.python import AsyncFileClient, FileServiceError
from tests.e2e.conftest import DEMO_APP, ROOT, ServerProcess, start_server
from tests.e2e.test_clients import NODE_DIR, _cli, _run

MiB = 1024 * 1024
needs_node = pytest.mark.skipif(
    not (NODE_DIR / "node_modules").exists(), reason="run `make install` (npm ci in clients/node)"
)


def _lines_file(path: Path, lines: int = 150_000) -> bytes:
    content = b"".join(b"line %d of a file larger than one grpc message\n" % n for n in range(lines))
    path.write_bytes(content)
    return content


def _stored(data_dir: Path) -> set[str]:
    """Every blob and temporary file of the data directory (the database aside)."""
    return {str(p.relative_to(data_dir)) for p in data_dir.glob("*/**/*") if p.is_file()}


async def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - files and processes have no event to wait on
            await asyncio.sleep(0.02)


async def test_cli_uploads_a_file_larger_than_a_message_with_a_progress_bar(
    server_process: ServerProcess, tmp_path: Path, _data_dir: Path
) -> None:
    content = _lines_file(tmp_path / "big.txt")
    assert len(content) > 6 * MiB  # grpc's default message limit is 4 MiB
    digest = hashlib.sha256(content).hexdigest()
    code, out, err = await _cli(server_process, "upload", str(tmp_path / "big.txt"))
    assert code == 0, err
    [line] = out.splitlines()  # stdout keeps one "id  name  size" line per file
    file_id, name, size, _ = line.split()
    assert (name, size) == ("big.txt", str(len(content)))
    megabytes = f"{len(content) / 1e6:.1f}"
    assert re.search(rf"uploading big\.txt ━+ {megabytes}/{megabytes} MB", err), err  # the bar, on stderr

    code, out, err = await _cli(server_process, "process", file_id)
    assert code == 0, err
    assert f"1/1 {file_id} big.txt: {len(content)} B, 150000 lines, sha256 {digest[:12]}" in out
    assert _stored(_data_dir) == {f"blobs/{digest[:2]}/{digest}"}

    code, out, err = await _cli(
        server_process, "upload", "--json", "--name", "again.txt", str(tmp_path / "big.txt")
    )
    assert code == 0 and "uploading" not in err
    assert (json.loads(out)["name"], json.loads(out)["sha256"]) == ("again.txt", digest)


async def test_past_the_limit_the_cli_and_node_get_resource_exhausted_and_nothing_is_kept(
    tmp_path: Path, _data_dir: Path
) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(3 * MiB))
    server = await start_server("--app", DEMO_APP, "--grace", "2", env={"FILES_MAX_UPLOAD_BYTES": str(MiB)})
    try:
        code, out, err = await _cli(server, "upload", str(tmp_path / "big.bin"))
        assert code == 1 and out == ""
        assert f"RESOURCE_EXHAUSTED (UPLOAD_TOO_LARGE): file 'big.bin' is more than {MiB} bytes" in err
        if (NODE_DIR / "node_modules").exists():
            code, out, err = await _run(
                "node", str(NODE_DIR / "upload.js"), "--address", server.address, str(tmp_path / "big.bin")
            )
            assert code == 1 and out == ""
            assert err.startswith(f"error: RESOURCE_EXHAUSTED: file 'big.bin' is more than {MiB} bytes"), err
        async with AsyncFileClient(server.address) as files:
            assert await files.list_files() == []
        await _until(lambda: _stored(_data_dir) == set())
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


async def test_cancelling_an_sdk_upload_mid_stream_keeps_nothing(
    server_process: ServerProcess, _data_dir: Path
) -> None:
    release = threading.Event()

    class SlowFile:
        """Hands out two 64 KiB pieces, then waits (in the SDK's reader thread) until released."""

        def __init__(self) -> None:
            self.reads = 0

        def read(self, size: int) -> bytes:
            self.reads += 1
            if self.reads > 2:
                release.wait(10)
                return b""
            return b"s" * size

    async with AsyncFileClient(server_process.address) as files:
        upload = asyncio.create_task(files.upload("slow.bin", SlowFile(), timeout=None))  # type: ignore[arg-type]
        tmp = _data_dir / "tmp"
        await _until(lambda: any(p.stat().st_size == 128 * 1024 for p in tmp.iterdir()))  # under way
        upload.cancel()
        with pytest.raises(asyncio.CancelledError):
            await upload
        release.set()
        await _until(lambda: _stored(_data_dir) == set())
        assert await files.list_files() == []
        assert (await files.upload("after.txt", b"fine\n")).size == 5  # the server goes on serving


@needs_node
async def test_node_uploads_a_large_file_and_ctrl_c_mid_upload_keeps_nothing(
    server_process: ServerProcess, tmp_path: Path, _data_dir: Path
) -> None:
    content = _lines_file(tmp_path / "big.txt")
    code, out, err = await _run(
        "node",
        str(NODE_DIR / "upload.js"),
        "--address",
        server_process.address,
        "--name",
        "n.txt",
        str(tmp_path / "big.txt"),
    )
    assert code == 0, err
    info = json.loads(out)
    assert (info["name"], info["size"], info["sha256"]) == (
        "n.txt",
        len(content),
        hashlib.sha256(content).hexdigest(),
    )
    assert info["uploaded_at"].endswith("Z") and info["file_id"].startswith("f_")
    stored = _stored(_data_dir)

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # node reads the upload from it as we write: we decide when it is "mid-upload"
    node = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "upload.js"), "--address", server_process.address, str(fifo),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    writer = await asyncio.to_thread(os.open, fifo, os.O_WRONLY)
    try:
        await asyncio.to_thread(os.write, writer, b"p" * 256 * 1024)
        await _until(lambda: any(p.stat().st_size >= 128 * 1024 for p in (_data_dir / "tmp").iterdir()))
        node.send_signal(signal.SIGINT)
        assert node.stderr is not None
        assert await asyncio.wait_for(node.stderr.readline(), 10) == b"cancelled\n"
        os.close(writer)  # node exits once its pending read of the pipe returns
        writer = -1
        assert await asyncio.wait_for(node.wait(), 10) == 130
    finally:
        if writer != -1:
            os.close(writer)
        if node.returncode is None:
            node.kill()
            await node.wait()
    await _until(lambda: _stored(_data_dir) == stored)  # the temporary file is gone, no blob was added
    async with AsyncFileClient(server_process.address) as files:
        assert [f.name for f in await files.list_files()] == ["n.txt"]


async def test_an_sdk_upload_over_the_limit_raises_with_the_servers_reason(tmp_path: Path) -> None:
    server = await start_server("--app", DEMO_APP, "--grace", "2", env={"FILES_MAX_UPLOAD_BYTES": "1000"})
    try:
        async with AsyncFileClient(server.address) as files:
            with pytest.raises(FileServiceError) as refused:
                await files.upload("big.bin", b"x" * 5 * MiB)
            assert (refused.value.reason, refused.value.metadata["limit_bytes"]) == (
                "UPLOAD_TOO_LARGE",
                "1000",
            )
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()
