"""The bus as the server's dependency: ``--nats-url`` reaches the App's broker, an unreachable bus stops
the start with one line, and health is NOT_SERVING while NATS is down and SERVING again after."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sample.files.v1 import files_pb2, files_pb2_grpc

from cqrs.bus import BusConfig, JetStreamBroker, NatsServer
from cqrs.bus.server import free_port
from cqrs.errors import UnavailableError
from server import cli
from server.app import App
from server.health import ServingStatus
from server.settings import ServerSettings
from server.testing import serve_for_test
from tests.bus.helpers import Seen, broker, consumer, recording_mediator, until
from tests.bus.test_rpc import NotifyingHandler
from tests.server.helpers import app_with

pytestmark = pytest.mark.timeout(30)

NOWHERE = "nats://127.0.0.1:9"  # the broker's own URL in these tests: only settings.nats_url can work


def bus_app(config: BusConfig, nats_url: str | None, **options: float) -> tuple[App, JetStreamBroker]:
    options.setdefault("publish_timeout", 0.5)
    options.setdefault("ack_timeout", 0.5)
    publisher = broker(NOWHERE, config, **options)
    app = app_with(NotifyingHandler, message_broker=publisher)
    app.broker = publisher
    app.settings = dataclasses.replace(app.settings, nats_url=nats_url)
    return app, publisher


def unreachable_app() -> App:
    """The --app of the CLI test: its bus is nowhere (port 9, discard)."""
    return bus_app(BusConfig(), None)[0]


async def test_the_app_connects_its_broker_to_nats_url_and_closes_it_at_stop(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    app, publisher = bus_app(bus_config, nats_server.url)
    seen: Seen = []
    async with consumer(nats_server.url, bus_config, recording_mediator(seen, "audit"), "audit"):
        async with serve_for_test(app) as served:
            assert publisher.connected and publisher.url == nats_server.url
            stub = served.stub(files_pb2_grpc.FileServiceStub)
            command = files_pb2.ProcessFilesCommand(file_ids=["a", "b"])
            assert [r.file_id async for r in stub.ProcessFiles(command)] == ["a", "b"]
            await until(lambda: len(seen) == 2, 5.0, "both events consumed")
        assert not publisher.connected
    assert [(file_id, n) for _, file_id, n, _ in seen] == [("a", 1), ("b", 2)]


async def test_an_unreachable_bus_stops_the_start(bus_config: BusConfig) -> None:
    app, publisher = bus_app(bus_config, f"nats://127.0.0.1:{free_port()}")
    with pytest.raises(UnavailableError, match="cannot be reached"):
        await app.start("127.0.0.1:0")
    assert not publisher.connected


def test_the_cli_refuses_an_unreachable_bus_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    argv = ["--app", "tests.bus.test_server:unreachable_app", "--address", "127.0.0.1:0", "--nats-url", url]
    assert cli.main([*argv, "--log-level", "error"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert f"ERROR server: cannot serve: the event bus at {url} cannot be reached" in line


@pytest.mark.parametrize("url", ["localhost:4222", "http://127.0.0.1:4222", "nats://", "nats://h:port"])
def test_a_bad_nats_url_is_refused(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parse_args(["--app", "m:a", "--nats-url", url])
    assert exited.value.code == 2 and "bad NATS URL" in capsys.readouterr().err
    with pytest.raises(ValueError, match="bad NATS URL"):
        ServerSettings(nats_url=url)


def test_nats_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CQRS_GRPC_NATS_URL", "nats://bus:4222")
    args = cli.parse_args(["--app", "m:a"])
    assert cli.apply_settings(ServerSettings(), args).nats_url == "nats://bus:4222"
    args = cli.parse_args(["--app", "m:a", "--nats-url", "nats://a:1,nats://b:2"])
    assert cli.apply_settings(ServerSettings(), args).nats_url == "nats://a:1,nats://b:2"


async def test_health_is_not_serving_while_nats_is_down_and_serving_after(
    nats_server: NatsServer, bus_config: BusConfig
) -> None:
    app, _ = bus_app(bus_config, nats_server.url)
    async with serve_for_test(app) as served:
        health = served.stub(health_pb2_grpc.HealthStub)

        async def check(service: str = "") -> ServingStatus:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
            return ServingStatus(reply.status)

        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        statuses: list[ServingStatus] = []

        async def next_status() -> ServingStatus:
            statuses.append(ServingStatus((await asyncio.wait_for(watch.read(), 5)).status))
            return statuses[-1]

        assert await next_status() is ServingStatus.SERVING
        assert await check() is ServingStatus.SERVING
        nats_server.stop()
        assert await next_status() is ServingStatus.NOT_SERVING  # pushed, not polled (interval 5 s)
        assert await check() is ServingStatus.NOT_SERVING
        assert await check("sample.files.v1.FileService") is ServingStatus.NOT_SERVING
        nats_server.start()
        assert await next_status() is ServingStatus.SERVING
        assert await check() is ServingStatus.SERVING
        watch.cancel()
    assert statuses == [ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING]
