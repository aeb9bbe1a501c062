"""The demo's storage: content-addressed blobs and a SQLite database in one data directory.

Layout of the data directory::

    blobs/ab/abcdef…   the content, named by its SHA-256 (identical uploads share one blob)
    tmp/               uploads being written; renamed into blobs/ once complete
    demo.sqlite3       files (metadata, last status) and audit (one row per domain event)

Why it is safe against hostile input: file ids are opaque random tokens looked up in SQLite with
bound parameters, and a blob path is built only from a SHA-256 read back from the database and
checked to be 64 hex digits. Names are metadata, never path components. Nothing a client sends
becomes a path.

Why it does not block the event loop: SQLite runs on one dedicated thread (the only writer, so no
"database is locked"), and blob hashing and writing run in worker threads. Every write commits
before the call returns, so a clean shutdown loses nothing: there is no buffer to flush.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from examples.files.domain import (
    KIND_PROCESSED,
    KIND_UPLOADED,
    UPLOADED,
    FileInfo,
    FileProcessed,
    FileStatus,
    FileUploaded,
)
from examples.files.processing import DEFAULT_CHUNK_BYTES, Digest, ReadChunk, digest_file, read_chunk

T = TypeVar("T")

DATABASE = "demo.sqlite3"
_ID = re.compile(r"f_[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    file_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    status TEXT NOT NULL,
    processed_at TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    file_id TEXT NOT NULL,
    status TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


@dataclasses.dataclass(frozen=True, slots=True)
class AuditRow:
    """One handled domain event, as the audit log keeps it."""

    seq: int
    kind: str
    file_id: str
    status: str
    occurred_at: datetime
    detail: dict[str, Any]


def audit_fields(event: FileUploaded | FileProcessed) -> tuple[str, str, datetime, dict[str, Any]]:
    """The audit row of ``event``: kind, status, when, and the rest of its fields as detail."""
    detail: dict[str, Any] = dict(plain(event.to_dict()))
    for key in ("file_id", "status", "uploaded_at", "processed_at"):
        detail.pop(key, None)
    if isinstance(event, FileUploaded):
        return KIND_UPLOADED, UPLOADED, event.uploaded_at, detail
    return KIND_PROCESSED, event.status, event.processed_at, detail


def plain(data: Any) -> Any:
    """``data`` as JSON can hold it: datetimes in ISO 8601, UUIDs as strings."""
    return json.loads(json.dumps(data, default=_iso))


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def new_file_info(name: str, size: int, sha256: str) -> FileInfo:
    """A file under a new opaque id, uploaded now."""
    return FileInfo(
        file_id="f_" + secrets.token_hex(16),
        name=name,
        size=size,
        sha256=sha256,
        uploaded_at=datetime.now(UTC),
    )


class FileStore:
    """Files, their last status and the audit log of one data directory (created if missing)."""

    EXTRA_SCHEMA = ""  # tables a subclass adds

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.root = Path(data_dir).resolve()
        self._blobs = self.root / "blobs"
        self._tmp = self.root / "tmp"
        for directory in (self.root, self._blobs, self._tmp):
            directory.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-sqlite")
        self._closed = False
        self._db = self._executor.submit(self._connect).result()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.root / DATABASE, isolation_level=None, check_same_thread=False, timeout=10)
        # Several worker processes (--workers) open the same database at once; switching it to WAL
        # can report "locked" without waiting on the busy timeout, so that step is retried.
        for attempt in range(100):
            try:
                db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or attempt == 99:
                    raise
                time.sleep(0.05)
        # NORMAL in WAL mode: a committed row survives a process crash; power loss may lose the last ones.
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA + self.EXTRA_SCHEMA)
        return db

    async def _sql(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    def close(self) -> None:
        """Finish pending writes, checkpoint the WAL and close the database (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._executor.submit(self._db.close).result()
        self._executor.shutdown(wait=True)

    # -- files -------------------------------------------------------------------------------

    async def save(self, name: str, content: bytes) -> FileInfo:
        """Store ``content`` under a new opaque id; identical content shares one blob."""
        upload = self.begin_upload()
        try:
            await upload.write(content)
            return await upload.commit(name)
        finally:
            upload.discard()

    def begin_upload(self) -> BlobUpload:
        """Content to be written in pieces; ``discard()`` it in a ``finally``, committed or not."""
        return BlobUpload(self, self._tmp)

    async def _record(self, name: str, size: int, sha256: str) -> FileInfo:
        info = new_file_info(name, size, sha256)
        await self._sql(self._insert_file, info)
        return info

    def _insert_file(self, info: FileInfo) -> None:
        self._db.execute(
            "INSERT INTO files (file_id, name, size, sha256, uploaded_at, status) VALUES (?, ?, ?, ?, ?, ?)",
            (info.file_id, info.name, info.size, info.sha256, info.uploaded_at.isoformat(), UPLOADED),
        )

    def blob_path(self, sha256: str) -> Path:
        """Where the content with this digest lives; refuses anything but a SHA-256 hex digest."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self._blobs / sha256[:2] / sha256

    async def digest(
        self, info: FileInfo, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, read: ReadChunk = read_chunk
    ) -> Digest:
        """Size, SHA-256 and line count of the stored content of ``info`` (OSError if unreadable)."""
        return await digest_file(self.blob_path(info.sha256), chunk_bytes=chunk_bytes, read=read)

    async def get(self, file_id: str) -> FileInfo | None:
        """The file with this id, or None (also for anything that is not an id at all)."""
        if not _ID.fullmatch(file_id):
            return None
        rows = await self._sql(self._select_files, "WHERE file_id = ?", (file_id,))
        return rows[0] if rows else None

    async def list_files(self) -> list[FileInfo]:
        """Every file, oldest upload first."""
        return await self._sql(self._select_files, "ORDER BY rowid", ())

    def _select_files(self, where: str, params: tuple[str, ...]) -> list[FileInfo]:
        query = f"SELECT file_id, name, size, sha256, uploaded_at FROM files {where}"
        return [
            FileInfo(file_id=i, name=n, size=s, sha256=h, uploaded_at=datetime.fromisoformat(u))
            for i, n, s, h, u in self._db.execute(query, params)
        ]

    # -- status ------------------------------------------------------------------------------

    async def set_status(self, file_id: str, status: str, processed_at: datetime) -> None:
        await self._sql(
            lambda: self._db.execute(
                "UPDATE files SET status = ?, processed_at = ? WHERE file_id = ?",
                (status, processed_at.isoformat(), file_id),
            )
        )

    async def status(self, file_id: str) -> FileStatus | None:
        """``uploaded`` until the file is processed, then its last processing status."""
        if not _ID.fullmatch(file_id):
            return None
        row = await self._sql(
            lambda: self._db.execute(
                "SELECT status, processed_at FROM files WHERE file_id = ?", (file_id,)
            ).fetchone()
        )
        if row is None:
            return None
        status, processed_at = row
        return FileStatus(
            file_id=file_id,
            status=status,
            processed_at=datetime.fromisoformat(processed_at) if processed_at else None,
        )

    # -- audit -------------------------------------------------------------------------------

    async def append_audit(
        self, *, kind: str, file_id: str, status: str, occurred_at: datetime, detail: dict[str, Any]
    ) -> int:
        """Append one row, committed before this returns; its sequence number."""

        return await self._sql(self._insert_audit, kind, file_id, status, occurred_at, detail)

    def _insert_audit(
        self, kind: str, file_id: str, status: str, occurred_at: datetime, detail: dict[str, Any]
    ) -> int:
        cursor = self._db.execute(
            "INSERT INTO audit (kind, file_id, status, occurred_at, detail) VALUES (?, ?, ?, ?, ?)",
            (kind, file_id, status, occurred_at.isoformat(), json.dumps(detail, sort_keys=True)),
        )
        return int(cursor.lastrowid or 0)

    async def last_audit_seq(self) -> int:
        """The sequence number of the last audit row (0: none)."""
        row = await self._sql(lambda: self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone())
        return int(row[0])

    async def audit_rows(self, after: int = 0) -> list[AuditRow]:
        """The rows whose sequence number is above ``after``, in order."""
        rows = await self._sql(
            lambda: self._db.execute(
                "SELECT seq, kind, file_id, status, occurred_at, detail FROM audit "
                "WHERE seq > ? ORDER BY seq",
                (after,),
            ).fetchall()
        )
        return [
            AuditRow(seq, kind, file_id, status, datetime.fromisoformat(at), json.loads(detail))
            for seq, kind, file_id, status, at, detail in rows
        ]


class BlobUpload:
    """Content arriving in pieces: written to a temporary file in ``tmp/`` and hashed as it comes.

    ``commit`` moves the file into ``blobs/`` by an atomic rename (or drops it when that content is
    already stored) and records the file. ``discard`` deletes the temporary file; it never awaits, so
    it also runs to the end in the ``finally`` of a cancelled task, and it is a no-op after ``commit``.
    """

    def __init__(self, store: FileStore, tmp: Path) -> None:
        self._store = store
        self._hasher = hashlib.sha256()
        self.size = 0
        # Created here, on the loop, not in a worker thread: a cancel cannot then leave behind a file
        # whose handle no one holds. Creating one small file does not block the loop for long.
        self._path = tmp / f"upload.{secrets.token_hex(8)}"
        self._file: BinaryIO | None = self._path.open("xb")

    async def write(self, data: bytes) -> None:
        """Append ``data`` (written and hashed in a worker thread, off the loop)."""
        if self._file is None:
            raise RuntimeError("this upload was already committed or discarded")
        await asyncio.to_thread(self._append, self._file, data)
        self.size += len(data)

    def _append(self, file: BinaryIO, data: bytes) -> None:
        file.write(data)
        self._hasher.update(data)

    @property
    def sha256(self) -> str:
        """Lower-case hex SHA-256 of what was written so far."""
        return self._hasher.hexdigest()

    async def commit(self, name: str) -> FileInfo:
        """Move the content into place and record it under a new opaque id."""
        if self._file is None:
            raise RuntimeError("this upload was already committed or discarded")
        file, self._file = self._file, None
        # Closing (flushing at most one buffer) and renaming are quick, and done without awaiting so
        # that a cancel cannot fall between them.
        file.close()
        sha256 = self._hasher.hexdigest()
        target = self._store.blob_path(sha256)
        if target.exists():
            self._path.unlink()  # identical content is stored already: one blob serves both
        else:
            target.parent.mkdir(exist_ok=True)
            os.replace(self._path, target)
        return await self._store._record(name, self.size, sha256)

    def discard(self) -> None:
        """Delete the temporary file, if it is still there (idempotent)."""
        if self._file is not None:
            # A write still running in its worker thread holds the file's lock: close waits for it.
            self._file.close()
            self._file = None
        self._path.unlink(missing_ok=True)
