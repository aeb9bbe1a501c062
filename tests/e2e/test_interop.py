"""gRPC's interop cases against ``python -m server --app examples.interop:create_app``."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator

import grpc
import pytest

from examples.interop import create_app
from examples.interop.client import CASES, run_cases, table
from server.testing import serve_for_test
from src.proto.grpc.testing import messages_pb2, test_pb2_grpc
from tests.e2e.conftest import ServerProcess, buf_curl, start_server

INTEROP_APP = "examples.interop:create_app"
SERVICE = "grpc.testing.TestService"


@pytest.fixture
async def interop_server() -> AsyncIterator[ServerProcess]:
    server = await start_server("--app", INTEROP_APP, "--grace", "1")
    try:
        yield server
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


def json_messages(out: str) -> list[dict[str, object]]:
    """The JSON messages buf curl printed one after another."""
    decoder, messages, text = json.JSONDecoder(), [], out.strip()
    while text:
        message, end = decoder.raw_decode(text)
        messages.append(message)
        text = text[end:].strip()
    return messages


async def test_every_interop_case_passes(interop_server: ServerProcess) -> None:
    outcomes = await run_cases(interop_server.address)
    print("\n" + table(outcomes))  # the probe's table, shown with pytest -s
    assert [o.case for o in outcomes] == list(CASES)
    assert all(o.passed for o in outcomes), table(outcomes)


async def test_buf_curl_calls_the_test_service_through_reflection(interop_server: ServerProcess) -> None:
    url = f"http://{interop_server.address}"
    code, out, err = await buf_curl("--list-methods", url)
    assert code == 0, err
    assert f"{SERVICE}/FullDuplexCall" in out.split()
    assert "grpc.testing.UnimplementedService/UnimplementedCall" not in out.split()  # not served

    code, out, err = await buf_curl("-d", json.dumps({"responseSize": 3}), f"{url}/{SERVICE}/UnaryCall")
    assert code == 0, err
    [response] = json_messages(out)
    assert response["payload"] == {"body": base64.b64encode(bytes(3)).decode()}

    request = {"responseParameters": [{"size": 1}, {"size": 2}, {"size": 3}]}
    code, out, err = await buf_curl("-d", json.dumps(request), f"{url}/{SERVICE}/StreamingOutputCall")
    assert code == 0, err
    bodies = [base64.b64decode(m["payload"]["body"]) for m in json_messages(out)]  # type: ignore[index]
    assert bodies == [bytes(1), bytes(2), bytes(3)]


async def test_an_upload_the_client_cancels_is_not_taken_for_a_finished_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="server.rpc")
    async with serve_for_test(create_app()) as served:
        call = served.stub(test_pb2_grpc.TestServiceStub).StreamingInputCall()
        await call.write(messages_pb2.StreamingInputCallRequest(payload=messages_pb2.Payload(body=b"x")))
        await asyncio.sleep(0.2)  # the handler has read it and waits for the next one
        call.cancel()  # no done_writing(): the upload is abandoned
        assert await call.code() is grpc.StatusCode.CANCELLED
        await asyncio.sleep(0.3)
    [logged] = [r for r in caplog.records if getattr(r, "rpc_method", "").endswith("/StreamingInputCall")]
    assert logged.rpc_status == "CANCELLED"


async def test_the_rpcs_bound_to_subclasses_of_a_generated_class_reach_their_own_handlers() -> None:
    # CacheableUnaryCall, FullDuplexCall and HalfDuplexCall read one-line subclasses of the generated
    # SimpleRequest and StreamingOutputCallRequest; no interop case calls the first and the last
    async with serve_for_test(create_app()) as served:
        stub = served.stub(test_pb2_grpc.TestServiceStub)
        call = stub.CacheableUnaryCall(messages_pb2.SimpleRequest(response_size=3))
        response = await call
        assert int(response.payload.body) > 0  # the time in nanoseconds, not 3 zero bytes
        assert ("cache-control", "max-age=60, public") in list(await call.initial_metadata())

        requests = [
            messages_pb2.StreamingOutputCallRequest(
                response_parameters=[messages_pb2.ResponseParameters(size=n)]
            )
            for n in (1, 2)
        ]
        for method in (stub.FullDuplexCall, stub.HalfDuplexCall):
            bodies = [r.payload.body async for r in method(iter(requests))]
            assert bodies == [bytes(1), bytes(2)], method
