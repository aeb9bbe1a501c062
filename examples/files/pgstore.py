"""The demo's storage in PostgreSQL: what every replica shares (metadata, status, audit, content, outbox).

Content is stored in the database in chunks (``blobs``, ``blob_chunks``), named by its SHA-256 like the
SQLite store's blob files, so any replica reads what any other stored (docs/deployment.md says why here
rather than in JetStream's object store). An upload is first written to a local temporary file while it
is hashed; its commit copies it into the database in one transaction.

State and events change together: :meth:`PgFileStore.record_event` writes the state an event stands for
(the file row, or its status), its audit row and its outbox row (relayed to NATS by
:class:`~examples.files.outbox.OutboxRelay`) in one transaction. An upload's file row is written by
its ``FileUploaded`` event, so nothing is visible before its event is durable.

Every database failure (down, restarting, no free connection in time) surfaces as
:class:`cqrs.UnavailableError`: clients get UNAVAILABLE and may retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
from psycopg.types.json import Jsonb

import cqrs
from cqrs.message_brokers.protocol import Message
from examples.files.domain import (
    NOT_FOUND,
    UPLOADED,
    FileInfo,
    FileProcessed,
    FileStatus,
    FileUploaded,
)
from examples.files.pgschema import OUTBOX_CHANNEL, migrate
from examples.files.processing import DEFAULT_CHUNK_BYTES, Digest, ReadChunk, digest_chunks, read_chunk
from examples.files.store import AuditRow, BlobUpload, FileStore, audit_fields, new_file_info, plain

__all__ = ["DatabaseProblem", "PgFileStore", "check_database_url"]

_ID = re.compile(r"f_[0-9a-f]{32}")
CONTENT_CHUNK_BYTES = 1024 * 1024
_SCHEMES = ("postgresql", "postgres")


class DatabaseProblem(OSError):
    """The database named at start is malformed, cannot be reached, or cannot be migrated
    (``python -m server`` logs it in one line and exits 2)."""


def check_database_url(url: str) -> str:
    """``url`` if it is a ``postgresql://`` URL psycopg can parse; :class:`DatabaseProblem` naming the fix
    otherwise."""
    scheme = url.partition("://")[0]
    if scheme not in _SCHEMES or "://" not in url:
        raise DatabaseProblem(
            f"{redact(url)!r} is not a database URL: use postgresql://user@host:port/database"
        )
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise DatabaseProblem(f"{redact(url)!r} is not a valid PostgreSQL URL: {exc}") from None
    return url


def redact(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


@contextlib.asynccontextmanager
async def unavailable_on_failure() -> AsyncIterator[None]:
    """Turn a lost or unreachable database into :class:`cqrs.UnavailableError` (UNAVAILABLE on the wire)."""
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise cqrs.UnavailableError(
            f"the database is unavailable ({type(exc).__name__}); retry", reason="DATABASE_UNAVAILABLE"
        ) from exc


class PgFileStore(FileStore):
    """The :class:`FileStore` of replicas: every read and write goes to the PostgreSQL at ``url``.

    ``prepare()`` (synchronous, at start) reaches the database and migrates it; ``open()`` opens the
    connection pool; ``aclose()`` closes it. ``data_dir`` holds only uploads being received.
    """

    def __init__(
        self,
        url: str,
        data_dir: str | os.PathLike[str],
        *,
        max_connections: int = 16,
        wait_timeout: float = 5.0,
        connect_timeout: float = 3.0,
    ) -> None:
        self.url = check_database_url(url)
        self.root = Path(data_dir).resolve()
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._connect_timeout = connect_timeout
        self.pool = psycopg_pool.AsyncConnectionPool(
            url,
            open=False,
            min_size=1,
            max_size=max_connections,
            timeout=wait_timeout,
            check=psycopg_pool.AsyncConnectionPool.check_connection,
            kwargs={"connect_timeout": max(1, round(connect_timeout))},
            name="files",
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def prepare(self) -> int:
        """Reach the database and migrate it (under the migration lock); the version it had.

        :class:`DatabaseProblem` names the URL (without password) and the reason."""
        try:
            with psycopg.connect(self.url, connect_timeout=max(1, round(self._connect_timeout))) as conn:
                return migrate(conn)
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseProblem(f"cannot use the database at {redact(self.url)}: {reason}") from None

    async def open(self) -> None:
        """Open the pool (waiting for its first connection, within the connect timeout)."""
        try:
            await self.pool.open(wait=True, timeout=self._connect_timeout)
        except psycopg_pool.PoolTimeout:
            await self.pool.close()
            raise DatabaseProblem(f"cannot connect to the database at {redact(self.url)}") from None

    def close(self) -> None:
        """Nothing to do synchronously: the pool is closed by ``aclose``."""

    async def aclose(self) -> None:
        await self.pool.close()

    async def healthy(self) -> bool:
        """True if a pooled connection answers ``SELECT 1`` now."""
        try:
            async with self.pool.connection(timeout=1.0) as conn:
                await conn.execute("SELECT 1")
            return True
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            return False

    # -- content -----------------------------------------------------------------------------

    def begin_upload(self) -> BlobUpload:
        return PgBlobUpload(self, self._tmp)

    async def _store_content(self, path: Path, sha256: str, size: int) -> None:
        """Copy ``path`` into ``blob_chunks`` (in one transaction) unless that content is stored already."""
        chunks = (size + CONTENT_CHUNK_BYTES - 1) // CONTENT_CHUNK_BYTES
        async with unavailable_on_failure(), self.pool.connection() as conn, conn.transaction():
            inserted = await conn.execute(
                "INSERT INTO blobs (sha256, size, chunks) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (sha256, size, chunks),
            )
            if inserted.rowcount == 0:
                return  # identical content is stored already (or being stored: the conflict waited for it)
            with path.open("rb") as file:
                for n in range(chunks):
                    data = await asyncio.to_thread(file.read, CONTENT_CHUNK_BYTES)
                    await conn.execute(
                        "INSERT INTO blob_chunks (sha256, n, data) VALUES (%s, %s, %s)", (sha256, n, data)
                    )

    async def digest(
        self, info: FileInfo, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, read: ReadChunk = read_chunk
    ) -> Digest:
        """Size, SHA-256 and line count of the stored content, read chunk by chunk from the database."""
        return await digest_chunks(self._chunks(info.sha256))

    async def _chunks(self, sha256: str) -> AsyncIterator[bytes]:
        async with unavailable_on_failure(), self.pool.connection() as conn:
            row = await (
                await conn.execute("SELECT chunks FROM blobs WHERE sha256 = %s", (sha256,))
            ).fetchone()
            if row is None:
                raise FileNotFoundError(f"no content with SHA-256 {sha256}")
            for n in range(int(row[0])):
                cursor = await conn.execute(
                    "SELECT data FROM blob_chunks WHERE sha256 = %s AND n = %s", (sha256, n)
                )
                chunk = await cursor.fetchone()
                if chunk is None:
                    raise FileNotFoundError(f"chunk {n} of {sha256} is missing")
                yield bytes(chunk[0])

    async def content(self, sha256: str) -> bytes:
        """The whole stored content (tests and small files)."""
        return b"".join([chunk async for chunk in self._chunks(sha256)])

    # -- files and status --------------------------------------------------------------------

    async def _record(self, name: str, size: int, sha256: str) -> FileInfo:
        # The row itself is written by the FileUploaded event, with its audit and outbox rows.
        return new_file_info(name, size, sha256)

    async def get(self, file_id: str) -> FileInfo | None:
        if not _ID.fullmatch(file_id):
            return None
        rows = await self._files("WHERE file_id = %s", (file_id,))
        return rows[0] if rows else None

    async def list_files(self) -> list[FileInfo]:
        return await self._files("ORDER BY seq", ())

    async def _files(self, where: str, params: tuple[str, ...]) -> list[FileInfo]:
        async with unavailable_on_failure(), self.pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT file_id, name, size, sha256, uploaded_at FROM files {where}", params
            )
            rows = await cursor.fetchall()
        return [FileInfo(file_id=i, name=n, size=s, sha256=h, uploaded_at=u) for i, n, s, h, u in rows]

    async def status(self, file_id: str) -> FileStatus | None:
        if not _ID.fullmatch(file_id):
            return None
        async with unavailable_on_failure(), self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT status, processed_at FROM files WHERE file_id = %s", (file_id,)
            )
            row = await cursor.fetchone()
        if row is None:
            return None
        return FileStatus(file_id=file_id, status=row[0], processed_at=row[1])

    async def set_status(self, file_id: str, status: str, processed_at: datetime) -> None:
        async with unavailable_on_failure(), self.pool.connection() as conn:
            await conn.execute(
                "UPDATE files SET status = %s, processed_at = %s WHERE file_id = %s",
                (status, processed_at, file_id),
            )

    # -- events: state, audit and outbox in one transaction ----------------------------------

    async def record_event(
        self, event: FileUploaded | FileProcessed, message: Message | None = None
    ) -> Message:
        """Commit the event's state change, its audit row and its outbox row together; the outbox's
        message (by default :func:`domain_message`), whose id the relay sends as ``Nats-Msg-Id``."""
        message = message if message is not None else domain_message(event)
        kind, status, occurred_at, detail = audit_fields(event)
        async with unavailable_on_failure(), self.pool.connection() as conn, conn.transaction():
            # The state change first: its row lock orders two events of one file, so their outbox ids
            # (taken after it) follow the order in which they commit.
            if isinstance(event, FileUploaded):
                await conn.execute(
                    "INSERT INTO files (file_id, name, size, sha256, uploaded_at, status)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    (event.file_id, event.name, event.size, event.sha256, event.uploaded_at, UPLOADED),
                )
            elif event.status != NOT_FOUND:
                await conn.execute(
                    "UPDATE files SET status = %s, processed_at = %s WHERE file_id = %s",
                    (event.status, event.processed_at, event.file_id),
                )
            await conn.execute(
                "INSERT INTO audit (event_id, kind, file_id, status, occurred_at, detail)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (message.message_id, kind, event.file_id, status, occurred_at, Jsonb(detail)),
            )
            await conn.execute(
                "INSERT INTO outbox (event_id, message_name, topic, payload) VALUES (%s, %s, %s, %s)",
                (message.message_id, message.message_name, message.topic, Jsonb(plain(message.payload))),
            )
            await conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")
        return message

    async def append_audit(
        self, *, kind: str, file_id: str, status: str, occurred_at: datetime, detail: dict[str, Any]
    ) -> int:
        async with unavailable_on_failure(), self.pool.connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO audit (event_id, kind, file_id, status, occurred_at, detail)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING seq",
                (uuid.uuid4(), kind, file_id, status, occurred_at, Jsonb(detail)),
            )
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def last_audit_seq(self) -> int:
        """The sequence number of the last audit row (0: none)."""
        async with unavailable_on_failure(), self.pool.connection() as conn:
            row = await (await conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit")).fetchone()
        return int(row[0]) if row else 0

    async def audit_rows(self, after: int = 0) -> list[AuditRow]:
        """The rows whose sequence number is above ``after``, in order."""
        async with unavailable_on_failure(), self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT seq, kind, file_id, status, occurred_at, detail FROM audit"
                " WHERE seq > %s ORDER BY seq",
                (after,),
            )
            rows = await cursor.fetchall()
        return [
            AuditRow(seq, kind, file_id, status, at, detail)
            for seq, kind, file_id, status, at, detail in rows
        ]


class PgBlobUpload(BlobUpload):
    """A :class:`BlobUpload` whose commit copies the received content into the database."""

    _store: PgFileStore

    async def commit(self, name: str) -> FileInfo:
        if self._file is None:
            raise RuntimeError("this upload was already committed or discarded")
        file, self._file = self._file, None
        file.close()
        try:
            await self._store._store_content(self._path, self.sha256, self.size)
        finally:
            self._path.unlink(missing_ok=True)
        return await self._store._record(name, self.size, self.sha256)


def domain_message(event: FileUploaded | FileProcessed) -> Message:
    """The event itself as a bus message (its class name, its fields), under a new id."""
    return Message(message_name=type(event).__name__, topic=None, payload=event.to_dict())
