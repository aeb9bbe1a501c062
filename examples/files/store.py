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
from typing import Any, TypeVar

from examples.files.domain import UPLOADED, FileInfo, FileStatus

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


class FileStore:
    """Files, their last status and the audit log of one data directory (created if missing)."""

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
        db.executescript(_SCHEMA)
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
        sha256 = await asyncio.to_thread(self._write_blob, content)
        info = FileInfo(
            file_id="f_" + secrets.token_hex(16),
            name=name,
            size=len(content),
            sha256=sha256,
            uploaded_at=datetime.now(UTC),
        )
        await self._sql(self._insert_file, info)
        return info

    def _write_blob(self, content: bytes) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        target = self.blob_path(sha256)
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            temporary = self._tmp / f"{sha256}.{secrets.token_hex(4)}"
            temporary.write_bytes(content)
            os.replace(temporary, target)
        return sha256

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

        def insert() -> int:
            cursor = self._db.execute(
                "INSERT INTO audit (kind, file_id, status, occurred_at, detail) VALUES (?, ?, ?, ?, ?)",
                (kind, file_id, status, occurred_at.isoformat(), json.dumps(detail, sort_keys=True)),
            )
            return int(cursor.lastrowid or 0)

        return await self._sql(insert)

    async def audit_rows(self) -> list[AuditRow]:
        rows = await self._sql(
            lambda: self._db.execute(
                "SELECT seq, kind, file_id, status, occurred_at, detail FROM audit ORDER BY seq"
            ).fetchall()
        )
        return [
            AuditRow(seq, kind, file_id, status, datetime.fromisoformat(at), json.loads(detail))
            for seq, kind, file_id, status, at, detail in rows
        ]
