"""Two replica processes over one PostgreSQL and one nats-server, reached through one round_robin channel.

Each fault is bounded in time: a kill -9 of a replica, a restart of PostgreSQL, a restart of NATS, all
under concurrent streams. What a client was acknowledged must be in the database, once, and the audit
log must hold nothing the state tables do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import nats
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cqrs.bus import BusConfig, NatsServer
from demo.files.v1 import files_pb2, files_pb2_grpc
from examples.files.pgserver import PostgresServer
from tests.replicas.conftest import new_database
from tests.replicas.replica import ROOT, Replica, round_robin

pytestmark = pytest.mark.e2e


@dataclass
class Cluster:
    database: str
    a: Replica
    b: Replica


@pytest.fixture(scope="module")
def cluster(
    postgres: PostgresServer, nats: NatsServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    database = new_database(postgres)
    a = Replica(database, nats.url, tmp_path_factory.mktemp("replica-a"))
    try:
        b = Replica(database, nats.url, tmp_path_factory.mktemp("replica-b"))
    except BaseException:
        a.stop()
        raise
    try:
        yield Cluster(database, a, b)
    finally:
        a.stop()
        b.stop()


def _stub(channel: grpc.aio.Channel) -> files_pb2_grpc.FileServiceStub:
    return files_pb2_grpc.FileServiceStub(channel)


async def test_upload_on_one_process_on_the_other_status_and_watch_on_either(cluster: Cluster) -> None:
    async with (
        grpc.aio.insecure_channel(cluster.a.address) as on_a,
        grpc.aio.insecure_channel(cluster.b.address) as on_b,
    ):
        await _stub(on_a).UploadFile(files_pb2.UploadFileCommand(name="w.txt", content=b"w"), timeout=10)
        watch = _stub(on_b).WatchFileEvents(files_pb2.WatchFileEventsQuery(), timeout=30)
        assert ("x-subscribed", "true") in tuple(await watch.initial_metadata())  # live from here on
        content = b"shared\ncontent\n"
        info = await _stub(on_a).UploadFile(
            files_pb2.UploadFileCommand(name="s.txt", content=content), timeout=10
        )
        results = [
            r
            async for r in _stub(on_b).ProcessFiles(
                files_pb2.ProcessFilesCommand(file_ids=[info.file_id]), timeout=10
            )
        ]
        assert [(r.status, r.line_count, r.sha256) for r in results] == [("completed", 2, info.sha256)]
        for channel in (on_a, on_b):
            status = await _stub(channel).GetFileStatus(
                files_pb2.GetFileStatusQuery(file_id=info.file_id), timeout=10
            )
            assert status.status == "completed"
            listed = await _stub(channel).ListFiles(files_pb2.ListFilesQuery(), timeout=10)
            assert info.file_id in [f.file_id for f in listed.files]
        # the watcher on B sees A's upload and B's result, relayed through the outbox, in order
        seen = await _events_of(watch, info.file_id)
        watch.cancel()
        assert [(e.kind, e.file_id) for e in seen] == [
            ("file_uploaded", info.file_id),
            ("file_processed", info.file_id),
        ]
        assert seen[0].sequence < seen[1].sequence and seen[1].line_count == 2
        # a watcher on A resumes from before them: the same events, the same sequence numbers
        resumed = _stub(on_a).WatchFileEvents(
            files_pb2.WatchFileEventsQuery(after_sequence=seen[0].sequence - 1), timeout=30
        )
        replayed = await _events_of(resumed, info.file_id)
        resumed.cancel()
        assert [(e.sequence, e.kind, e.file_id) for e in replayed] == [
            (e.sequence, e.kind, e.file_id) for e in seen
        ]


async def _events_of(
    call: grpc.aio.UnaryStreamCall, file_id: str, count: int = 2
) -> list[files_pb2.FileEvent]:
    """The first ``count`` events about ``file_id`` the watch sends (others are skipped)."""
    events = []
    for _ in range(50):
        event = await asyncio.wait_for(call.read(), 10)
        if event.file_id == file_id:
            events.append(event)
            if len(events) == count:
                return events
    raise AssertionError(f"only {len(events)} events about {file_id} among the first 50")


@dataclass
class Load:
    """Concurrent clients that upload a file, then process it, over and over; what was acknowledged."""

    channel: grpc.aio.Channel
    uploads: set[str] = field(default_factory=set)
    processed: dict[str, int] = field(default_factory=dict)
    codes: dict[grpc.StatusCode, int] = field(default_factory=dict)
    ok_since: int = 0  # successes since the last reset

    async def client(self, stop: asyncio.Event) -> None:
        stub = _stub(self.channel)
        while not stop.is_set():
            try:
                content = secrets.token_bytes(64)
                info = await stub.UploadFile(
                    files_pb2.UploadFileCommand(name="l.bin", content=content), timeout=10
                )
                self.uploads.add(info.file_id)
                async for result in stub.ProcessFiles(
                    files_pb2.ProcessFilesCommand(file_ids=[info.file_id]), timeout=10
                ):
                    assert result.status == "completed", result
                    self.processed[result.file_id] = self.processed.get(result.file_id, 0) + 1
                self._count(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as error:
                self._count(error.code())
                await asyncio.sleep(0.05)

    def _count(self, code: grpc.StatusCode) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1
        if code is grpc.StatusCode.OK:
            self.ok_since += 1

    async def until_ok(self, count: int, timeout: float) -> None:
        self.ok_since = 0
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.05)):
            if self.ok_since >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert self.ok_since >= count, f"only {self.ok_since} successes within {timeout} s: {self.codes}"


@contextlib.asynccontextmanager
async def load(channel: grpc.aio.Channel, clients: int) -> AsyncIterator[Load]:
    running = Load(channel)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(running.client(stop)) for _ in range(clients)]
    try:
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


def _check_database(database: str, acked: Load) -> None:
    """Every acknowledged upload and result is stored once; the audit holds only what the state holds."""
    with psycopg.connect(database) as conn:
        files = dict(conn.execute("SELECT file_id, status FROM files").fetchall())
        audit = conn.execute("SELECT kind, file_id, status FROM audit").fetchall()
    uploaded = [file_id for kind, file_id, _ in audit if kind == "file_uploaded"]
    assert sorted(uploaded) == sorted(files), "one upload audit row per file row, and no other"
    assert acked.uploads <= set(files)
    processed: dict[str, int] = {}
    for kind, file_id, status in audit:
        if kind == "file_processed":
            assert files[file_id] == status == "completed"
            processed[file_id] = processed.get(file_id, 0) + 1
    for file_id, times in acked.processed.items():
        assert processed.get(file_id) == times, file_id


async def _health(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        return int(reply.status)


async def test_restarting_postgresql_fails_rpcs_unavailable_then_they_recover(
    cluster: Cluster, postgres: PostgresServer
) -> None:
    async with round_robin(cluster.a, cluster.b) as channel, load(channel, 10) as running:
        await running.until_ok(10, timeout=20)
        await asyncio.to_thread(postgres.stop, mode="immediate")
        await asyncio.sleep(1.5)
        assert await _health(cluster.a.address) == health_pb2.HealthCheckResponse.NOT_SERVING
        await asyncio.to_thread(postgres.start)
        await running.until_ok(20, timeout=30)
        assert await _health(cluster.b.address) == health_pb2.HealthCheckResponse.SERVING
    assert set(running.codes) == {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, running.codes
    _check_database(cluster.database, running)


async def test_restarting_nats_loses_no_event(cluster: Cluster, nats: NatsServer) -> None:
    async with round_robin(cluster.a, cluster.b) as channel, load(channel, 10) as running:
        await running.until_ok(10, timeout=20)
        await asyncio.to_thread(nats.stop)
        await asyncio.sleep(1.0)
        # the outbox holds the events: a load balancer must keep sending RPCs here meanwhile
        assert await _health(cluster.a.address) == health_pb2.HealthCheckResponse.SERVING
        await asyncio.to_thread(nats.start)
        await running.until_ok(20, timeout=30)
    assert set(running.codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, running.codes
    _check_database(cluster.database, running)
    await _all_relayed_once(cluster.database, nats.url)


async def _all_relayed_once(database: str, nats_url: str, timeout: float = 20.0) -> None:
    """Once the outbox is empty, every audited event is in the stream exactly once, and each file's
    events are in the order they committed (the audit's order)."""
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        for _ in range(int(timeout / 0.1)):
            row = await (await conn.execute("SELECT count(*) FROM outbox")).fetchone()
            if row == (0,):
                break
            await asyncio.sleep(0.1)
        assert row == (0,), f"{row} events still in the outbox after {timeout} s"
        cursor = await conn.execute("SELECT event_id, file_id FROM audit ORDER BY seq")
        audited = {str(event_id): file_id for event_id, file_id in await cursor.fetchall()}
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(BusConfig().stream)
        ids = [
            ((await js.get_msg(BusConfig().stream, seq)).headers or {}).get("Nats-Msg-Id")
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await nc.close()
    relayed = [i for i in ids if i in audited]
    assert sorted(relayed) == sorted(audited)
    for file_id in set(audited.values()):
        committed = [i for i, f in audited.items() if f == file_id]
        assert [i for i in relayed if audited[i] == file_id] == committed, file_id


async def test_kill_9_of_a_replica_under_40_streams(cluster: Cluster, nats: NatsServer) -> None:
    async with round_robin(cluster.a, cluster.b) as channel, load(channel, 40) as running:
        await running.until_ok(40, timeout=30)
        cluster.a.kill()
        await running.until_ok(80, timeout=30)
    assert set(running.codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, running.codes
    _check_database(cluster.database, running)
    await _all_relayed_once(cluster.database, nats.url)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://127.0.0.1/files", "is not a database URL: use postgresql://"),
        (
            "postgresql://me:pw@127.0.0.1:1/files",
            "cannot use the database at postgresql://me:***@127.0.0.1:1/files",
        ),
    ],
)
def test_a_bad_or_unreachable_database_stops_the_start_with_one_line(
    url: str, says: str, nats: NatsServer, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server", "--app", "examples.files:create_app", "--address", "127.0.0.1:0",
         "--database", url, "--nats-url", nats.url],
        cwd=ROOT, capture_output=True, text=True, timeout=30, env={"FILES_DATA_DIR": str(tmp_path), "PATH": ""},
    )  # fmt: skip
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and says in errors[0], done.stderr
    assert "Traceback" not in done.stderr
