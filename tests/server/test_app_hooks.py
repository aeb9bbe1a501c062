"""App.on_startup and App.add_health_check: resources an app opens at start, and health that follows them."""

from __future__ import annotations

import socket

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.app import App
from server.cli import load_app
from server.testing import serve_for_test
from tests.server.sample import create_app


async def test_startup_callbacks_run_before_the_server_serves() -> None:
    app = create_app()
    opened: list[str] = []

    @app.on_startup
    async def open_pool() -> None:
        opened.append("pool")

    async with serve_for_test(app):
        assert opened == ["pool"]


async def test_a_failing_startup_callback_stops_the_start() -> None:
    app = create_app()

    @app.on_startup
    async def unreachable() -> None:
        raise OSError("the database is unreachable")

    with pytest.raises(OSError, match="unreachable"):
        await app.start("127.0.0.1:0")


async def test_a_start_that_fails_after_the_startup_callbacks_runs_the_shutdown_callbacks() -> None:
    app = create_app()
    events: list[str] = []

    @app.on_startup
    async def start_relay() -> None:
        events.append("relay started")

    app.on_shutdown(lambda: events.append("pool closed"))
    app.on_shutdown(lambda: events.append("relay stopped"))
    with socket.socket() as taken:  # the port is bound already: the start fails after the callbacks
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(Exception):  # noqa: B017 - grpc's own error for a port in use
            await app.start(f"127.0.0.1:{taken.getsockname()[1]}")
    assert events == ["relay started", "relay stopped", "pool closed"]


async def test_a_health_check_gates_the_whole_server() -> None:
    app = create_app()
    up = True

    async def database() -> bool:
        return up

    app.add_health_check(database)
    async with serve_for_test(app) as served:
        stub = health_pb2_grpc.HealthStub(served.channel)
        request = health_pb2.HealthCheckRequest()
        assert (await stub.Check(request, timeout=5)).status == health_pb2.HealthCheckResponse.SERVING
        up = False
        for service in ("", *app.service_names):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING, service


TAKEN: list[str | None] = []


def factory_with_database(database: str | None = None) -> App:
    TAKEN.append(database)
    return create_app()


async def test_database_goes_to_the_factory_that_takes_one() -> None:
    await load_app(f"{__name__}:factory_with_database", "postgresql://db/files")
    assert TAKEN == ["postgresql://db/files"]
    with pytest.raises(SystemExit, match="takes no database"):
        await load_app("tests.server.sample:create_app", "postgresql://db/files")
