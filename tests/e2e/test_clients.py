"""Every kind of caller against ``python -m server``: the Python SDK (async and sync), its CLI, the
Node.js client (with Ctrl-C), and a restart on the same data directory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import grpc
import pytest

from clients.python import AsyncFileClient, Connection, FileClient, FileServiceError
from tests.e2e.conftest import DEMO_APP, ROOT, ServerProcess, start_server

NODE_DIR = ROOT / "clients" / "node"


async def _run(*args: str, timeout: float = 30, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _cli(server: ServerProcess, *args: str) -> tuple[int, str, str]:
    return await _run(sys.executable, "-m", "clients.python", "--address", server.address, *args)


async def test_python_sdk_async_and_sync(server_process: ServerProcess) -> None:
    connection = Connection(server_process.address, timeout=10, metadata=[("x-request-id", "e2e")])
    async with AsyncFileClient(connection) as files:
        async with files.watch() as events:
            info = await files.upload("a.txt", b"one\ntwo\nthree")
            results = [r async for r in files.process([info.file_id, "nope"])]
            kinds = []
            async for event in events:
                kinds.append((event.kind, event.file_id, event.status))
                if len(kinds) == 3:
                    break
        assert [(r.status, r.index, r.total, r.line_count) for r in results] == [
            ("completed", 1, 2, 3),
            ("not_found", 2, 2, 0),
        ]
        assert kinds == [
            ("file_uploaded", info.file_id, ""),
            ("file_processed", info.file_id, "completed"),
            ("file_processed", "nope", "not_found"),
        ]
        with pytest.raises(FileServiceError) as empty:
            _ = [r async for r in files.process([])]
        assert empty.value.code is grpc.StatusCode.INVALID_ARGUMENT
        assert empty.value.violations == (("file_ids", "must name at least one file"),)

    def sync_calls() -> tuple[list[str], str]:
        with FileClient(connection) as files:
            listed = [f.name for f in files.list_files()]
            [result] = list(files.process([info.file_id]))
            return listed, files.status(info.file_id).status + "/" + result.status

    assert await asyncio.to_thread(sync_calls) == (["a.txt"], "completed/completed")


async def test_cli_upload_list_process_and_watch(server_process: ServerProcess, tmp_path: Path) -> None:
    watcher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clients.python", "--address", server_process.address, "watch", "--count", "3", "--json",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert watcher.stderr is not None and watcher.stdout is not None
        subscribed = await asyncio.wait_for(watcher.stderr.readline(), 15)
        assert b"subscribed" in subscribed  # live from here: nothing below can be missed

        (tmp_path / "poem.txt").write_text("roses\nviolets\n")
        (tmp_path / "empty.txt").write_text("")
        code, out, err = await _cli(
            server_process, "upload", str(tmp_path / "poem.txt"), str(tmp_path / "empty.txt")
        )
        assert code == 0, err
        ids = [line.split()[0] for line in out.splitlines()]
        assert len(ids) == 2 and all(i.startswith("f_") for i in ids)

        code, out, err = await _cli(server_process, "list")
        assert code == 0 and "poem.txt" in out and "empty.txt" in out

        code, out, err = await _cli(server_process, "process", ids[0], "missing")
        assert code == 0, err
        assert f"1/2 {ids[0]} poem.txt: 14 B, 2 lines" in out
        assert "2/2 missing not_found" in out and "1 of 2 completed" in out
        assert (await _cli(server_process, "process", "--strict", "missing"))[0] == 1

        events = [
            json.loads(line) for line in (await asyncio.wait_for(watcher.stdout.read(), 15)).splitlines()
        ]
        assert [(e["kind"], e["name"]) for e in events] == [
            ("file_uploaded", "poem.txt"),
            ("file_uploaded", "empty.txt"),
            ("file_processed", "poem.txt"),
        ]
        assert await asyncio.wait_for(watcher.wait(), 5) == 0
    finally:
        if watcher.returncode is None:
            watcher.kill()
            await watcher.wait()

    poem = str(tmp_path / "poem.txt")
    assert (await _cli(server_process, "upload", "--name", "x", poem, poem))[0] == 2  # --name needs one file


@pytest.mark.skipif(
    not (NODE_DIR / "node_modules").exists(), reason="run `make install` (npm ci in clients/node)"
)
async def test_node_client_prints_results_as_they_arrive_and_cancels_on_ctrl_c(
    server_process: ServerProcess,
) -> None:
    async with AsyncFileClient(server_process.address) as files:
        small = await files.upload("small.txt", b"a\nb\n")
        big = await files.upload("big.bin", os.urandom(8 * 1024 * 1024))
    code, out, err = await _run(
        "node", str(NODE_DIR / "process.js"), "--address", server_process.address, small.file_id, "zzz"
    )
    assert code == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    assert [(r["file_id"], r["status"], r["index"], r["line_count"]) for r in results] == [
        (small.file_id, "completed", 1, 2),
        ("zzz", "not_found", 2, 0),
    ]
    assert results[0]["processed_at"].endswith("Z")

    node = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "process.js"), "--address", server_process.address, *[big.file_id] * 500,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert node.stdout is not None
        first = json.loads(
            await asyncio.wait_for(node.stdout.readline(), 15)
        )  # streaming: not after 500 files
        assert (first["index"], first["total"], first["status"]) == (1, 500, "completed")
        node.send_signal(signal.SIGINT)
        _, err_bytes = await asyncio.wait_for(node.communicate(), 10)
        assert node.returncode == 130 and err_bytes.decode().strip() == "cancelled"
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()
    assert await server_process.terminate(timeout=5) == 0
    processed = [line for line in server_process.log if "ProcessFiles" in line and "status=" in line]
    assert any("status=CANCELLED" in line for line in processed), processed


async def test_a_restart_on_the_same_data_dir_keeps_files_and_audit_rows(_data_dir: Path) -> None:
    first = await start_server("--app", DEMO_APP, "--grace", "2")
    try:
        async with AsyncFileClient(first.address) as files:
            info = await files.upload("kept.txt", b"kept\n")
            [result] = [r async for r in files.process([info.file_id])]
            assert result.ok
        assert await first.terminate(timeout=5) == 0
    finally:
        if first.process.returncode is None:
            first.process.kill()
    with sqlite3.connect(_data_dir / "demo.sqlite3") as db:
        rows = db.execute("SELECT kind, file_id, status FROM audit ORDER BY seq").fetchall()
    assert rows == [
        ("file_uploaded", info.file_id, "uploaded"),
        ("file_processed", info.file_id, "completed"),
    ]

    second = await start_server("--app", DEMO_APP, "--grace", "2")
    try:
        async with AsyncFileClient(second.address) as files:
            assert [(f.file_id, f.name, f.sha256) for f in await files.list_files()] == [
                (info.file_id, "kept.txt", info.sha256)
            ]
            assert (await files.status(info.file_id)).status == "completed"
            [again] = [r async for r in files.process([info.file_id])]
            assert (again.status, again.sha256) == ("completed", info.sha256)
        assert await second.terminate(timeout=5) == 0
    finally:
        if second.process.returncode is None:
            second.process.kill()
    with sqlite3.connect(_data_dir / "demo.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM audit").fetchone() == (3,)
