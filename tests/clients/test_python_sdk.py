"""The Python SDK against a scripted fake FileService (pytest-grpc's sync server on 127.0.0.1).

The fake answers from a script and records what it was sent, so these tests pin the SDK's own
behaviour: typed results, deadlines, metadata, errors with the server's reason, cancellation.
"""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from clients.python import (
    AsyncFileClient,
    Connection,
    FileClient,
    FileEvent,
    FileInfo,
    FileServiceError,
    ProcessResult,
    Resume,
)
from demo.files.v1 import files_pb2, files_pb2_grpc

grpc_max_workers = 4  # a watch holds a worker while other calls are made
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _ts(message: Any, field: str) -> None:
    getattr(message, field).FromDatetime(WHEN)


class ScriptedFiles(files_pb2_grpc.FileServiceServicer):
    """Answers from fixed data; records metadata and deadlines; streams obey a gate."""

    def __init__(self) -> None:
        self.seen_metadata: list[dict[str, str]] = []
        self.seen_deadline: list[float | None] = []
        self.stream_closed = threading.Event()
        self.proceed = threading.Event()
        self.upload_messages: list[tuple[str, object]] = []
        self.watched_after: list[int] = []
        self.lost_before_events_at: int | None = None  # a first watch lost before its first event

    def _record(self, context: grpc.ServicerContext) -> None:
        self.seen_metadata.append({k: v for k, v in context.invocation_metadata()})
        self.seen_deadline.append(context.time_remaining())

    def UploadFile(
        self, request: files_pb2.UploadFileCommand, context: grpc.ServicerContext
    ) -> files_pb2.FileInfo:
        self._record(context)
        if len(request.content) > 8:
            _refuse_too_large(context)
        reply = files_pb2.FileInfo(file_id="f_1", name=request.name, size=len(request.content), sha256="ab")
        _ts(reply, "uploaded_at")
        return reply

    def UploadFileChunks(
        self, request_iterator: Iterator[files_pb2.UploadFileChunk], context: grpc.ServicerContext
    ) -> files_pb2.FileInfo:
        """Records each message as ``(kind, value)``; a file named "big" may hold at most 8 bytes."""
        self._record(context)
        seen = self.upload_messages
        seen.clear()
        name, size, sha256 = "", 0, ""
        for message in request_iterator:
            kind = message.WhichOneof("part")
            seen.append((kind, len(message.data) if kind == "data" else getattr(message, kind)))
            name = message.name or name
            size += len(message.data)
            sha256 = message.sha256 or sha256
            if name == "big" and size > 8:
                _refuse_too_large(context)
        reply = files_pb2.FileInfo(file_id="f_1", name=name, size=size, sha256=sha256)
        _ts(reply, "uploaded_at")
        return reply

    def ListFiles(
        self, request: files_pb2.ListFilesQuery, context: grpc.ServicerContext
    ) -> files_pb2.FileList:
        self._record(context)
        if dict(context.invocation_metadata()).get("x-slow") == "yes":
            time.sleep(1)  # exceeds the client's deadline in the deadline test
        files = [files_pb2.FileInfo(file_id=f"f_{n}", name=f"n{n}", size=n) for n in range(2)]
        for f in files:
            _ts(f, "uploaded_at")
        return files_pb2.FileList(files=files)

    def ProcessFiles(
        self, request: files_pb2.ProcessFilesCommand, context: grpc.ServicerContext
    ) -> Iterator[Any]:
        self._record(context)
        context.add_callback(self.stream_closed.set)
        total = len(request.file_ids)
        for index, file_id in enumerate(request.file_ids, start=1):
            if file_id == "gate":
                self.proceed.wait(5)
            status = "not_found" if file_id.startswith("x") else "completed"
            result = files_pb2.FileProcessedResult(
                file_id=file_id, status=status, index=index, total=total, size=3, line_count=1
            )
            _ts(result, "processed_at")
            yield result

    def WatchFileEvents(
        self, request: files_pb2.WatchFileEventsQuery, context: grpc.ServicerContext
    ) -> Iterator[Any]:
        self._record(context)
        context.add_callback(self.stream_closed.set)
        after = request.after_sequence
        lost_at = self.lost_before_events_at if after == 0 else None
        start = after if lost_at is None else lost_at
        context.send_initial_metadata((("x-subscribed", "true"), ("x-resume-after-sequence", str(start))))
        self.watched_after.append(after)
        if lost_at is not None:  # the connection is lost, not drained: no resume sequence in the status
            time.sleep(0.05)  # after the headers have left, as a real loss would be
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection lost")
        # a first watch: 1..3 then a drain; a resumed one repeats its last event (a client must drop
        # it), gives the next and ends
        for n in range(1, 4) if after == 0 else (after, after + 1):
            event = files_pb2.FileEvent(sequence=n, kind="file_uploaded", file_id=f"f_{n}")
            _ts(event, "occurred_at")
            yield event
        if after == 0:
            context.abort(grpc.StatusCode.UNAVAILABLE, "server is shutting down; reconnect")


def _refuse_too_large(context: grpc.ServicerContext) -> None:
    info = error_details_pb2.ErrorInfo(
        reason="UPLOAD_TOO_LARGE", domain="demo", metadata={"limit_bytes": "8"}
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="too big", details=[detail])
    context.abort_with_status(_RichStatus(status))


class _RichStatus(grpc.Status):  # type: ignore[misc]
    def __init__(self, status: status_pb2.Status) -> None:
        self.code = grpc.StatusCode.RESOURCE_EXHAUSTED
        self.details = status.message
        self.trailing_metadata = (("grpc-status-details-bin", status.SerializeToString()),)


@pytest.fixture(scope="module")
def grpc_addr() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def grpc_add_to_server() -> Any:
    return files_pb2_grpc.add_FileServiceServicer_to_server


@pytest.fixture(scope="module")
def grpc_servicer() -> ScriptedFiles:
    return ScriptedFiles()


@pytest.fixture(scope="module")
def grpc_stub_cls() -> Any:
    return files_pb2_grpc.FileServiceStub


@pytest.fixture
def fake(grpc_server: Any, grpc_servicer: ScriptedFiles) -> ScriptedFiles:
    grpc_servicer.seen_metadata.clear()
    grpc_servicer.seen_deadline.clear()
    grpc_servicer.stream_closed.clear()
    grpc_servicer.proceed.clear()
    grpc_servicer.upload_messages.clear()
    return grpc_servicer


@pytest.fixture
def connection(grpc_addr: str) -> Connection:
    return Connection(target=grpc_addr, timeout=5, metadata=(("x-client", "sdk-test"),))


def test_sync_calls_return_typed_results_with_deadline_and_metadata(
    fake: ScriptedFiles, connection: Connection
) -> None:
    with FileClient(connection) as client:
        info = client.upload("a.txt", b"abc", metadata=[("x-request-id", "r1")])
        assert info == FileInfo("f_1", "a.txt", 3, hashlib.sha256(b"abc").hexdigest(), WHEN)
        assert [f.file_id for f in client.list_files()] == ["f_0", "f_1"]
        results = list(client.process(["a", "xmissing"]))
    assert results == [
        ProcessResult("a", "completed", WHEN, 1, 2, size=3, line_count=1),
        ProcessResult("xmissing", "not_found", WHEN, 2, 2, size=3, line_count=1),
    ]
    assert fake.seen_metadata[0]["x-client"] == "sdk-test" and fake.seen_metadata[0]["x-request-id"] == "r1"
    assert fake.seen_deadline[0] is not None and 0 < fake.seen_deadline[0] <= 5
    assert fake.seen_deadline[2] > 1e9  # streams get no default deadline (grpc reports "infinite")


def test_errors_carry_code_and_server_reason(fake: ScriptedFiles, connection: Connection) -> None:
    with FileClient(connection) as client, pytest.raises(FileServiceError) as refused:
        client.upload("big", b"123456789")
    assert refused.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (refused.value.reason, refused.value.metadata) == ("UPLOAD_TOO_LARGE", {"limit_bytes": "8"})


def test_a_deadline_is_enforced(fake: ScriptedFiles, connection: Connection) -> None:
    with FileClient(connection) as client, pytest.raises(FileServiceError) as late:
        client.list_files(timeout=0.2, metadata={"x-slow": "yes"})
    assert late.value.code is grpc.StatusCode.DEADLINE_EXCEEDED


def test_leaving_a_stream_early_cancels_the_call(fake: ScriptedFiles, connection: Connection) -> None:
    with FileClient(connection) as client:
        stream = client.process(["a", "gate", "b"])
        assert next(stream).file_id == "a"
        stream.close()  # what `break` out of a for loop does
        assert fake.stream_closed.wait(5)
        fake.proceed.set()


def test_sync_watch_yields_events_then_the_status(fake: ScriptedFiles, connection: Connection) -> None:
    with FileClient(connection) as client, client.watch(resume=None) as events:
        seen: list[FileEvent] = []
        with pytest.raises(FileServiceError) as ended:
            for event in events:
                seen.append(event)
    assert [e.sequence for e in seen] == [1, 2, 3] and seen[0].occurred_at == WHEN
    assert ended.value.code is grpc.StatusCode.UNAVAILABLE


QUICK = Resume(first_delay=0.01, give_up_after=1.0)


def test_sync_watch_resumes_after_unavailable_with_no_gap_and_no_duplicate(
    fake: ScriptedFiles, connection: Connection
) -> None:
    before = len(fake.watched_after)  # the fake serves the whole module
    with FileClient(connection) as client, client.watch(resume=QUICK) as events:
        seen = [event.sequence for event in events]
    assert seen == [1, 2, 3, 4]
    assert fake.watched_after[before:] == [0, 3]


def test_a_sync_watch_cancelled_while_it_reconnects_ends_instead_of_reading_the_new_call(
    fake: ScriptedFiles, connection: Connection
) -> None:
    with FileClient(connection) as client, client.watch(resume=QUICK) as events:
        reopen = events._open

        def reopen_as_another_thread_cancels(after: int) -> Any:
            call = reopen(after)
            events.cancel()  # lands on the call being replaced, as from another thread
            return call

        events._open = reopen_as_another_thread_cancels  # type: ignore[method-assign]
        seen = [event.sequence for event in events]
    assert seen == [1, 2, 3]  # not 4: the resumed call was cancelled too


async def test_async_watch_resumes_after_unavailable_from_the_sequence_given(
    fake: ScriptedFiles, connection: Connection
) -> None:
    before = len(fake.watched_after)
    async with AsyncFileClient(connection) as client, client.watch(after_sequence=7, resume=QUICK) as events:
        seen = [event.sequence async for event in events]
    assert seen == [8]  # 7 was seen before this watch began
    assert fake.watched_after[before:] == [7]


async def test_a_watch_lost_before_its_first_event_resumes_where_its_feed_started(
    fake: ScriptedFiles, connection: Connection
) -> None:
    before = len(fake.watched_after)
    fake.lost_before_events_at = 20  # events 1..20 happened before the watch; 21 happens meanwhile
    try:
        async with AsyncFileClient(connection) as client, client.watch(resume=QUICK) as events:
            seen = [event.sequence async for event in events]
    finally:
        fake.lost_before_events_at = None
    assert seen == [21]  # the resumed watch replays 21, dropping 20 it started after
    assert fake.watched_after[before:] == [0, 20]


async def test_async_client_mirrors_the_sync_one(fake: ScriptedFiles, connection: Connection) -> None:
    async with AsyncFileClient(connection) as client:
        info = await client.upload("b.txt", b"xy")
        assert (info.name, info.size, info.uploaded_at) == ("b.txt", 2, WHEN)
        assert len(await client.list_files()) == 2
        results = [r async for r in client.process(["a", "b"])]
        assert [(r.file_id, r.index, r.total, r.ok) for r in results] == [
            ("a", 1, 2, True),
            ("b", 2, 2, True),
        ]
        with pytest.raises(FileServiceError) as refused:
            await client.upload("big", b"123456789")
        assert refused.value.reason == "UPLOAD_TOO_LARGE"
        async with client.watch(resume=None) as events:
            with pytest.raises(FileServiceError) as ended:
                _ = [e async for e in events]
        assert ended.value.code is grpc.StatusCode.UNAVAILABLE
    assert fake.seen_metadata[0]["x-client"] == "sdk-test"


async def test_async_stream_left_early_is_cancelled(fake: ScriptedFiles, connection: Connection) -> None:
    async with AsyncFileClient(connection) as client:
        stream = client.process(["a", "gate"])
        assert (await anext(stream)).file_id == "a"
        await stream.aclose()
        assert fake.stream_closed.wait(5)
        fake.proceed.set()


def test_upload_sends_the_name_the_pieces_then_the_digest_reporting_progress(
    fake: ScriptedFiles, connection: Connection, tmp_path: Path
) -> None:
    content = b"0123456789"
    digest = hashlib.sha256(content).hexdigest()
    progress: list[tuple[int, int | None]] = []
    with FileClient(connection) as client:
        info = client.upload("c.bin", content, chunk_bytes=4, progress=lambda *p: progress.append(p))
        assert (info.name, info.size, info.sha256) == ("c.bin", 10, digest)
        assert fake.upload_messages == [
            ("name", "c.bin"),
            ("data", 4),
            ("data", 4),
            ("data", 2),
            ("sha256", digest),
        ]
        assert progress == [(4, 10), (8, 10), (10, 10)]
        assert 0 < fake.seen_deadline[0] <= 5.5  # one deadline (5 s) for the whole upload, not per piece

        (tmp_path / "f.bin").write_bytes(b"skip" + content)
        progress.clear()
        with (tmp_path / "f.bin").open("rb") as file:
            file.read(4)  # a file is sent from where it stands
            assert (
                client.upload("f.bin", file, chunk_bytes=6, progress=lambda *p: progress.append(p)).sha256
                == digest
            )
        assert progress == [(6, 10), (10, 10)]


def test_an_upload_whose_reading_fails_raises_that_error_and_sends_no_digest(
    fake: ScriptedFiles, connection: Connection
) -> None:
    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise OSError("disk gone")

    with FileClient(connection) as client, pytest.raises(OSError, match="disk gone"):
        client.upload("broken.bin", Broken())
    assert not any(kind == "sha256" for kind, _ in fake.upload_messages)


async def test_async_upload_streams_a_file_of_unknown_size_and_stops_at_the_limit(
    fake: ScriptedFiles, connection: Connection
) -> None:
    progress: list[tuple[int, int | None]] = []
    async with AsyncFileClient(connection) as client:
        info = await client.upload(
            "d.bin", io.BytesIO(b"abcdefg"), chunk_bytes=3, progress=lambda *p: progress.append(p)
        )
        assert (info.size, info.sha256) == (7, hashlib.sha256(b"abcdefg").hexdigest())
        assert progress == [(3, None), (6, None), (7, None)]  # no size to tell for a stream
        with pytest.raises(FileServiceError) as refused:
            await client.upload("big", b"x" * 1024 * 1024, chunk_bytes=4)
        assert (refused.value.code, refused.value.reason) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "UPLOAD_TOO_LARGE",
        )
        assert len(fake.upload_messages) < 1000  # the server's answer ended the upload early

        def fail(sent: int, total: int | None) -> None:
            raise RuntimeError("progress bar broke")

        with pytest.raises(RuntimeError, match="progress bar broke"):
            await client.upload("e.bin", b"abc", progress=fail)
