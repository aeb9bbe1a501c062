"""grpc.health.v1.Health served by server.health.Health, checked with a real grpc.aio client over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.health import SERVICE_NAME, Health, ServingStatus

FILES = "demo.files.v1.FileService"
OTHER = "demo.other.v1.OtherService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


@pytest.fixture
def health() -> Health:
    return Health([FILES, OTHER], check_timeout=0.2, watch_interval=0.05)


@pytest.fixture
async def stub(health: Health) -> AsyncIterator[Any]:
    server = grpc.aio.server()
    health.register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    health.set_serving()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield health_pb2_grpc.HealthStub(channel)
    finally:
        await server.stop(None)


async def check(stub: Any, service: str = "") -> int:
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    status: int = response.status
    return status


async def next_status(watch: Any) -> int:
    response = await asyncio.wait_for(watch.read(), timeout=2)
    assert response is not grpc.aio.EOF
    status: int = response.status
    return status


def test_serving_status_mirrors_the_generated_enum() -> None:
    for member in ServingStatus:
        assert health_pb2.HealthCheckResponse.ServingStatus.Value(member.name) == member.value
    assert health_pb2.DESCRIPTOR.services_by_name["Health"].full_name == SERVICE_NAME


async def test_check_overall_and_each_service_serving(stub: Any) -> None:
    assert await check(stub) == SERVING
    assert await check(stub, FILES) == SERVING
    assert await check(stub, OTHER) == SERVING


async def test_not_serving_until_started(health: Health) -> None:
    assert await health.status("") == ServingStatus.NOT_SERVING
    assert await health.status(FILES) == ServingStatus.NOT_SERVING
    health.set_serving()
    assert await health.status(FILES) == ServingStatus.SERVING


async def test_check_of_unknown_service_is_not_found(stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await check(stub, "no.such.Service")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no.such.Service" in (raised.value.details() or "")


async def test_set_changes_one_service_only(stub: Any, health: Health) -> None:
    health.set(FILES, ServingStatus.NOT_SERVING)
    assert await check(stub, FILES) == NOT_SERVING
    assert await check(stub, OTHER) == SERVING
    assert await check(stub) == SERVING


async def test_set_not_serving_is_server_wide_and_reversible(stub: Any, health: Health) -> None:
    health.set_not_serving()
    assert [await check(stub, s) for s in ("", FILES, OTHER)] == [NOT_SERVING] * 3
    health.set_serving()
    assert [await check(stub, s) for s in ("", FILES, OTHER)] == [SERVING] * 3


async def test_watch_streams_serving_then_not_serving(stub: Any, health: Health) -> None:
    overall = stub.Watch(health_pb2.HealthCheckRequest(service=""))
    files = stub.Watch(health_pb2.HealthCheckRequest(service=FILES))
    assert await next_status(overall) == SERVING
    assert await next_status(files) == SERVING
    health.set_not_serving()
    assert await next_status(overall) == NOT_SERVING
    assert await next_status(files) == NOT_SERVING
    overall.cancel()
    files.cancel()


async def test_end_watches_sends_the_current_status_then_ends_every_watch(stub: Any, health: Health) -> None:
    watches = [stub.Watch(health_pb2.HealthCheckRequest(service=name)) for name in ("", FILES)]
    for watch in watches:
        assert await next_status(watch) == SERVING
    health.set_not_serving()
    health.end_watches()
    for watch in watches:
        assert await next_status(watch) == NOT_SERVING
        assert await asyncio.wait_for(watch.read(), 2) is grpc.aio.EOF
        assert await watch.code() is grpc.StatusCode.OK


async def test_watch_of_unknown_service_reports_it_then_follows_it(stub: Any, health: Health) -> None:
    watch = stub.Watch(health_pb2.HealthCheckRequest(service="late.Service"))
    assert await next_status(watch) == SERVICE_UNKNOWN
    health.set("late.Service", ServingStatus.SERVING)
    assert await next_status(watch) == SERVING
    watch.cancel()


async def test_failing_dependency_check_turns_service_and_overall_not_serving(
    stub: Any, health: Health
) -> None:
    healthy = True

    async def database() -> bool:
        return healthy

    health.add_check(FILES, database)
    assert await check(stub, FILES) == SERVING
    healthy = False
    assert await check(stub, FILES) == NOT_SERVING
    assert await check(stub) == NOT_SERVING
    assert await check(stub, OTHER) == SERVING
    healthy = True
    assert await check(stub, FILES) == SERVING
    assert await check(stub) == SERVING


async def test_raising_or_slow_checks_count_as_failures(stub: Any, health: Health) -> None:
    async def broken() -> bool:
        raise ConnectionError("database unreachable")

    async def hanging() -> bool:
        await asyncio.sleep(10)
        return True

    health.add_check("postgres", broken)
    health.add_check("cache", hanging)
    assert await check(stub, "postgres") == NOT_SERVING
    assert await check(stub, "cache") == NOT_SERVING  # bounded by check_timeout=0.2
    assert await check(stub) == NOT_SERVING
    assert await check(stub, FILES) == SERVING  # named dependencies gate only themselves and ""


async def test_overall_check_gates_every_service(stub: Any, health: Health) -> None:
    async def down() -> bool:
        return False

    health.add_check("", down)
    assert [await check(stub, s) for s in ("", FILES, OTHER)] == [NOT_SERVING] * 3


async def test_concurrent_checks_share_one_evaluation(health: Health) -> None:
    calls = 0
    release = asyncio.Event()

    async def slow() -> bool:
        nonlocal calls
        calls += 1
        await release.wait()
        return True

    health.add_check(FILES, slow)
    health.set_serving()
    probes = asyncio.gather(*(health.status(FILES) for _ in range(5)))
    await asyncio.sleep(0.01)  # every probe reaches the shared evaluation before it completes
    release.set()
    assert await probes == [ServingStatus.SERVING] * 5
    assert calls == 1
    assert await health.status(FILES) == ServingStatus.SERVING
    assert calls == 2  # shared while running, not cached afterwards


async def test_watch_polls_dependency_checks(stub: Any, health: Health) -> None:
    healthy = True

    async def dependency() -> bool:
        return healthy

    health.add_check(FILES, dependency)
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=FILES))
    assert await next_status(watch) == SERVING
    healthy = False  # nobody calls set(): the watch_interval poll must notice
    assert await next_status(watch) == NOT_SERVING
    watch.cancel()
