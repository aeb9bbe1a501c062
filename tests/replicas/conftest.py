"""One real PostgreSQL and one real nats-server for the replica tests, a fresh database per test.

PostgreSQL is Debian's, run by ``examples.files.pgserver.PostgresServer`` (as the ``postgres`` user when
the tests run as root) on a free loopback port with its data in a temporary directory.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cqrs.bus import NatsServer
from examples.files.pgserver import PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    # not under pytest's own temporary folder: that one is closed to the postgres user
    base = Path(tempfile.mkdtemp(prefix="cqrs-grpc-pg-"))
    server = PostgresServer(base)
    server.start()
    try:
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def new_database(postgres: PostgresServer) -> str:
    """The URL of a new, empty database."""
    if not postgres.running:
        postgres.start()
    name = "t_" + secrets.token_hex(6)
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres.url(name)


@pytest.fixture
def database(postgres: PostgresServer) -> str:
    return new_database(postgres)


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
