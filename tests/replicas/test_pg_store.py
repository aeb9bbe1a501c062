"""The PostgreSQL store, its migration and the outbox relay, in process against real servers."""

from __future__ import annotations

import asyncio
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest

from cqrs.bus import BusConfig, JetStreamBroker, NatsServer, field_key
from cqrs.message_brokers.protocol import Message
from examples.files.domain import COMPLETED, FileProcessed, FileUploaded
from examples.files.outbox import OutboxRelay
from examples.files.pgschema import SCHEMA_VERSION, migrate
from examples.files.pgstore import DatabaseProblem, PgFileStore
from tests.bus.helpers import until


def _bus() -> BusConfig:
    token = secrets.token_hex(4)
    return BusConfig(stream=f"T_{token}", prefix=f"t{token}.events")


async def _stored(nats_url: str, config: BusConfig) -> list[tuple[str, str]]:
    """(Nats-Msg-Id, subject) of every message in the stream, in stream order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(config.stream)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(config.stream, seq)
            out.append(((msg.headers or {})["Nats-Msg-Id"], msg.subject))
        return out
    finally:
        await nc.close()


def test_replicas_migrating_at_once_apply_each_step_once(database: str) -> None:
    barrier = threading.Barrier(4)
    found: list[int] = []
    errors: list[BaseException] = []

    def replica() -> None:
        try:
            with psycopg.connect(database) as conn:
                barrier.wait(timeout=10)
                found.append(migrate(conn))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(found) == [0, SCHEMA_VERSION, SCHEMA_VERSION, SCHEMA_VERSION]
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://127.0.0.1/x", "not a database URL"),
        ("postgresql://127.0.0.1:1/x", "cannot use the database"),
    ],
)
def test_a_bad_or_unreachable_database_is_one_clear_error(url: str, says: str, tmp_path: Path) -> None:
    with pytest.raises(DatabaseProblem, match=says) as caught:
        PgFileStore(url, tmp_path).prepare()
    assert "\n" not in str(caught.value)


def test_the_password_never_shows_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseProblem) as caught:
        PgFileStore("postgresql://me:s3cret@127.0.0.1:1/x", tmp_path).prepare()
    assert "s3cret" not in str(caught.value)


@pytest.fixture
async def store(database: str, upload_dir: Path) -> Any:
    store = PgFileStore(database, upload_dir)
    store.prepare()
    await store.open()
    try:
        yield store
    finally:
        await store.aclose()


async def _upload(store: PgFileStore, content: bytes) -> FileUploaded:
    info = await store.save("a.txt", content)
    event = FileUploaded(
        file_id=info.file_id, name=info.name, size=info.size, sha256=info.sha256, uploaded_at=info.uploaded_at
    )
    await store.record_event(event)
    return event


async def test_content_is_read_back_from_the_database_in_chunks(store: PgFileStore) -> None:
    content = b"line\n" * 300_000  # more than one chunk
    event = await _upload(store, content)
    assert await store.content(event.sha256) == content
    info = await store.get(event.file_id)
    assert info is not None
    digest = await store.digest(info)
    assert (digest.size, digest.sha256, digest.line_count) == (len(content), event.sha256, 300_000)


async def test_state_audit_and_outbox_commit_together(store: PgFileStore, database: str) -> None:
    event = await _upload(store, b"x")
    processed = FileProcessed(file_id=event.file_id, status=COMPLETED, processed_at=datetime.now(UTC))
    await store.record_event(processed)
    status = await store.status(event.file_id)
    assert status is not None and status.status == COMPLETED
    async with await psycopg.AsyncConnection.connect(database) as conn:
        audit = await (await conn.execute("SELECT event_id, kind FROM audit ORDER BY seq")).fetchall()
        outbox = await (
            await conn.execute("SELECT event_id, message_name FROM outbox ORDER BY id")
        ).fetchall()
    assert [kind for _, kind in audit] == ["file_uploaded", "file_processed"]
    assert [name for _, name in outbox] == ["FileUploaded", "FileProcessed"]
    assert [e for e, _ in audit] == [e for e, _ in outbox]


async def test_a_crash_between_publish_and_delete_loses_and_duplicates_nothing(
    store: PgFileStore, database: str, nats: NatsServer
) -> None:
    for content in (b"a", b"b", b"c"):
        await _upload(store, content)
    config = _bus()
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        ids = [
            str(row[0])
            for row in await (await conn.execute("SELECT event_id FROM outbox ORDER BY id")).fetchall()
        ]
        async with JetStreamBroker(nats.url, config=config, key=field_key("file_id")) as broker:
            published: list[Message] = []

            async def crash_after_the_second(message: Message) -> None:
                published.append(message)
                if len(published) == 2:
                    raise RuntimeError("the relay died after publishing, before deleting")

            with pytest.raises(RuntimeError):
                await OutboxRelay(database, broker, after_publish=crash_after_the_second).relay_once(conn)
            left = await (await conn.execute("SELECT count(*) FROM outbox")).fetchone()
            assert left == (2,)  # the second was published but is still in the outbox
            assert await OutboxRelay(database, broker).relay_once(conn) == 2
    stored = await _stored(nats.url, config)
    assert [msg_id for msg_id, _ in stored] == ids
    assert all(
        subject.startswith(f"{config.prefix}.") and ".FileUploaded.f_" in subject for _, subject in stored
    )


async def test_one_relay_at_a_time_and_another_takes_over(
    store: PgFileStore, database: str, nats: NatsServer
) -> None:
    async with JetStreamBroker(nats.url, config=_bus()) as broker:
        relays = [OutboxRelay(database, broker, poll_interval=0.05) for _ in range(2)]
        for relay in relays:
            relay.start()
        try:
            await until(lambda: any(relay.holds_lock for relay in relays), what="a relay holds the lock")
            holder = next(relay for relay in relays if relay.holds_lock)
            other = next(relay for relay in relays if relay is not holder)
            await asyncio.sleep(0.2)
            assert not other.holds_lock
            await holder.stop()
            await until(lambda: other.holds_lock, what="the other relay takes over")
            await _upload(store, b"after the take-over")
            await until(lambda: other.relayed >= 1, what="the new holder relays")
        finally:
            for relay in relays:
                await relay.stop()
