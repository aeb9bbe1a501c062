"""The demo's PostgreSQL schema, versioned, and the migration every replica runs at start.

``migrate`` holds a session advisory lock while it reads the version and applies what is missing, so
replicas that start at once apply each step exactly once: the others wait, then find nothing to do.
Steps are append-only: a released step is never edited, a change is a new step.
"""

from __future__ import annotations

from typing import Any

import psycopg

__all__ = ["MIGRATION_LOCK", "SCHEMA_VERSION", "migrate"]

MIGRATION_LOCK = 0x66696C6573  # "files": the advisory lock key migrations hold
OUTBOX_CHANNEL = "files_outbox"  # NOTIFY'd by each commit that adds outbox rows

_STEPS: tuple[str, ...] = (
    # 1: files, content, status, audit and the outbox
    """
    CREATE TABLE blobs (
        sha256 TEXT PRIMARY KEY,
        size BIGINT NOT NULL,
        chunks INTEGER NOT NULL
    );
    CREATE TABLE blob_chunks (
        sha256 TEXT NOT NULL REFERENCES blobs (sha256),
        n INTEGER NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (sha256, n)
    );
    CREATE TABLE files (
        seq BIGSERIAL UNIQUE,
        file_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        size BIGINT NOT NULL,
        sha256 TEXT NOT NULL REFERENCES blobs (sha256),
        uploaded_at TIMESTAMPTZ NOT NULL,
        status TEXT NOT NULL,
        processed_at TIMESTAMPTZ
    );
    CREATE TABLE audit (
        seq BIGSERIAL PRIMARY KEY,
        event_id UUID NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        file_id TEXT NOT NULL,
        status TEXT NOT NULL,
        occurred_at TIMESTAMPTZ NOT NULL,
        detail JSONB NOT NULL
    );
    CREATE TABLE outbox (
        id BIGSERIAL PRIMARY KEY,
        event_id UUID NOT NULL UNIQUE,
        message_name TEXT NOT NULL,
        topic TEXT,
        payload JSONB NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    """,
)
SCHEMA_VERSION = len(_STEPS)


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Bring the database to ``SCHEMA_VERSION`` under the advisory lock; the version it found."""
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        found = int(row[0]) if row and row[0] is not None else 0
        if found > SCHEMA_VERSION:
            raise RuntimeError(
                f"the database has schema version {found}; this code knows up to {SCHEMA_VERSION}: upgrade it"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            with conn.transaction():
                conn.execute(_STEPS[version - 1])
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        return found
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
