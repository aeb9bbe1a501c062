"""The client side of gRPC's interop test cases, with a plain grpc.aio client.

Each case follows doc/interop-test-descriptions.md in grpc/grpc and ends as an :class:`Outcome`:
passed, or failed with the reason. ``python -m examples.interop.client --address HOST:PORT`` runs
them against a server and prints one line per case; the exit status is 1 when any case fails.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence

import grpc
from grpc.aio import EOF  # type: ignore[attr-defined]  # grpc-stubs lacks it

from src.proto.grpc.testing import empty_pb2, messages_pb2, test_pb2_grpc

ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
CASE_TIMEOUT = 20.0


class CaseFailed(Exception):
    """A client assertion of a case did not hold; the message says which."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    case: str
    passed: bool
    reason: str = ""


def expect(holds: bool, reason: str) -> None:
    if not holds:
        raise CaseFailed(reason)


def payload(size: int) -> messages_pb2.Payload:
    return messages_pb2.Payload(body=bytes(size))


def streaming_request(size: int, body: int) -> messages_pb2.StreamingOutputCallRequest:
    return messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=size)], payload=payload(body)
    )


def expect_sizes(responses: Sequence[messages_pb2.StreamingOutputCallResponse], sizes: list[int]) -> None:
    got = [len(r.payload.body) for r in responses]
    expect(got == sizes, f"response payload sizes {got}, expected {sizes}")
    expect(all(not any(r.payload.body) for r in responses), "response payloads are not all zeros")


def expect_status(
    error: grpc.aio.AioRpcError | None, code: grpc.StatusCode, message: str | None = None
) -> None:
    expect(error is not None, f"the call succeeded; expected {code.name}")
    assert error is not None
    expect(error.code() == code, f"status {error.code().name} ({error.details()!r}), expected {code.name}")
    if message is not None:
        expect(error.details() == message, f"status message {error.details()!r}, expected {message!r}")


async def failure(call: Awaitable[object]) -> grpc.aio.AioRpcError | None:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error
    return None


async def empty_unary(stub: test_pb2_grpc.TestServiceStub, channel: grpc.aio.Channel) -> None:
    response = await stub.EmptyCall(empty_pb2.Empty())
    expect(isinstance(response, empty_pb2.Empty), f"response is {response!r}, not an Empty")


async def large_unary(stub: test_pb2_grpc.TestServiceStub, channel: grpc.aio.Channel) -> None:
    request = messages_pb2.SimpleRequest(response_size=314159, payload=payload(271828))
    response = await stub.UnaryCall(request)
    expect(
        response.payload.body == bytes(314159),
        f"payload of {len(response.payload.body)} bytes, not 314159 zeros",
    )


async def client_streaming(stub: test_pb2_grpc.TestServiceStub, channel: grpc.aio.Channel) -> None:
    requests = [messages_pb2.StreamingInputCallRequest(payload=payload(n)) for n in (27182, 8, 1828, 45904)]
    response = await stub.StreamingInputCall(iter(requests))
    expect(
        response.aggregated_payload_size == 74922,
        f"aggregated_payload_size {response.aggregated_payload_size}, expected 74922",
    )


async def server_streaming(stub: test_pb2_grpc.TestServiceStub, channel: grpc.aio.Channel) -> None:
    sizes = [31415, 9, 2653, 58979]
    request = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=n) for n in sizes]
    )
    call = stub.StreamingOutputCall(request)
    expect_sizes([response async for response in call], sizes)
    expect(await call.code() == grpc.StatusCode.OK, f"status {(await call.code()).name}, expected OK")


async def ping_pong(stub: test_pb2_grpc.TestServiceStub, channel: grpc.aio.Channel) -> None:
    call = stub.FullDuplexCall()
    responses: list[messages_pb2.StreamingOutputCallResponse] = []
    for size, body in [(31415, 27182), (9, 8), (2653, 1828), (58979, 45904)]:
        await call.write(streaming_request(size, body))
        response = await call.read()
        expect(response is not EOF, f"the stream ended after {len(responses)} responses")
        responses.append(response)
    await call.done_writing()
    expect(await call.read() is EOF, "more than four responses")
    expect_sizes(responses, [31415, 9, 2653, 58979])
    expect(await call.code() == grpc.StatusCode.OK, f"status {(await call.code()).name}, expected OK")


async def empty_stream(stub: test_pb2_grpc.TestServiceStub, channel: grpc.aio.Channel) -> None:
    call = stub.FullDuplexCall()
    await call.done_writing()
    expect(await call.read() is EOF, "a response arrived, expected none")
    expect(await call.code() == grpc.StatusCode.OK, f"status {(await call.code()).name}, expected OK")


async def _echo_status(stub: test_pb2_grpc.TestServiceStub, message: str, *, duplex: bool) -> None:
    status = messages_pb2.EchoStatus(code=2, message=message)
    error = await failure(stub.UnaryCall(messages_pb2.SimpleRequest(response_status=status)))
    expect_status(error, grpc.StatusCode.UNKNOWN, message)
    if duplex:
        call = stub.FullDuplexCall()
        await call.write(messages_pb2.StreamingOutputCallRequest(response_status=status))
        await call.done_writing()
        code, details = await call.code(), await call.details()
        expect(code == grpc.StatusCode.UNKNOWN, f"FullDuplexCall status {code.name}, expected UNKNOWN")
        expect(details == message, f"FullDuplexCall status message {details!r}, expected {message!r}")


async def status_code_and_message(stub: test_pb2_grpc.TestServiceStub, channel: grpc.aio.Channel) -> None:
    await _echo_status(stub, "test status message", duplex=True)


async def special_status_message(stub: test_pb2_grpc.TestServiceStub, channel: grpc.aio.Channel) -> None:
    await _echo_status(stub, SPECIAL_MESSAGE, duplex=False)


async def custom_metadata(stub: test_pb2_grpc.TestServiceStub, channel: grpc.aio.Channel) -> None:
    metadata = (ECHO_INITIAL, ECHO_TRAILING)
    unary = stub.UnaryCall(
        messages_pb2.SimpleRequest(response_size=314159, payload=payload(271828)), metadata=metadata
    )
    await unary
    await _expect_echoed("UnaryCall", unary)
    duplex = stub.FullDuplexCall(metadata=metadata)
    await duplex.write(streaming_request(314159, 271828))
    await duplex.done_writing()
    _ = [response async for response in duplex]
    expect(await duplex.code() == grpc.StatusCode.OK, f"FullDuplexCall status {(await duplex.code()).name}")
    await _expect_echoed("FullDuplexCall", duplex)


async def _expect_echoed(rpc: str, call: grpc.aio.Call) -> None:
    initial = list(await call.initial_metadata() or ())
    trailing = list(await call.trailing_metadata() or ())
    expect(ECHO_INITIAL in initial, f"{rpc}: {ECHO_INITIAL} not in the initial metadata {initial}")
    expect(ECHO_TRAILING in trailing, f"{rpc}: {ECHO_TRAILING} not in the trailing metadata {trailing}")


async def unimplemented_method(stub: test_pb2_grpc.TestServiceStub, channel: grpc.aio.Channel) -> None:
    expect_status(await failure(stub.UnimplementedCall(empty_pb2.Empty())), grpc.StatusCode.UNIMPLEMENTED)


async def unimplemented_service(stub: test_pb2_grpc.TestServiceStub, channel: grpc.aio.Channel) -> None:
    other = test_pb2_grpc.UnimplementedServiceStub(channel)  # type: ignore[no-untyped-call]
    expect_status(await failure(other.UnimplementedCall(empty_pb2.Empty())), grpc.StatusCode.UNIMPLEMENTED)


async def cancel_after_begin(stub: test_pb2_grpc.TestServiceStub, channel: grpc.aio.Channel) -> None:
    call = stub.StreamingInputCall()
    call.cancel()
    code = await call.code()
    expect(code == grpc.StatusCode.CANCELLED, f"status {code.name}, expected CANCELLED")


async def cancel_after_first_response(stub: test_pb2_grpc.TestServiceStub, channel: grpc.aio.Channel) -> None:
    call = stub.FullDuplexCall()
    await call.write(streaming_request(31415, 27182))
    response = await call.read()
    expect(response is not EOF, "no response arrived")
    expect_sizes([response], [31415])
    call.cancel()
    code = await call.code()
    expect(code == grpc.StatusCode.CANCELLED, f"status {code.name}, expected CANCELLED")


async def timeout_on_sleeping_server(stub: test_pb2_grpc.TestServiceStub, channel: grpc.aio.Channel) -> None:
    # As grpc's own asyncio interop client does (src/python/grpcio_tests/tests_aio/interop/methods.py):
    # a 1 s deadline and a server asked to sleep 2 s before answering. With the description's 1 ms,
    # grpc.aio's client may be mid-write when the deadline fires and then ends the call INTERNAL
    # ("Internal error from Core"), whatever the server.
    call = stub.FullDuplexCall(timeout=1.0)
    sleep = messages_pb2.ResponseParameters(interval_us=2_000_000)
    await call.write(
        messages_pb2.StreamingOutputCallRequest(payload=payload(27182), response_parameters=[sleep])
    )
    await call.done_writing()
    expect_status(await failure(call.read()), grpc.StatusCode.DEADLINE_EXCEEDED)


Case = Callable[[test_pb2_grpc.TestServiceStub, grpc.aio.Channel], Awaitable[None]]
CASES: dict[str, Case] = {
    case.__name__: case
    for case in (
        empty_unary,
        large_unary,
        client_streaming,
        server_streaming,
        ping_pong,
        empty_stream,
        status_code_and_message,
        special_status_message,
        custom_metadata,
        unimplemented_method,
        unimplemented_service,
        cancel_after_begin,
        cancel_after_first_response,
        timeout_on_sleeping_server,
    )
}


async def run_case(name: str, channel: grpc.aio.Channel) -> Outcome:
    """Run one case; any exception or unmet assertion is a failure with its reason."""
    try:
        async with asyncio.timeout(CASE_TIMEOUT):
            stub = test_pb2_grpc.TestServiceStub(channel)  # type: ignore[no-untyped-call]
            await CASES[name](stub, channel)
    except CaseFailed as failed:
        return Outcome(name, False, str(failed))
    except grpc.aio.AioRpcError as error:
        return Outcome(name, False, f"unexpected status {error.code().name}: {error.details()!r}")
    except TimeoutError:
        return Outcome(name, False, f"did not finish within {CASE_TIMEOUT} s")
    except Exception as error:
        return Outcome(name, False, f"{type(error).__name__}: {error}")
    return Outcome(name, True)


async def run_cases(address: str, names: Iterable[str] = CASES) -> list[Outcome]:
    """Run the named cases in order against the server at ``address`` (plaintext), on one channel."""
    async with grpc.aio.insecure_channel(address) as channel:
        return [await run_case(name, channel) for name in names]


def table(outcomes: Iterable[Outcome]) -> str:
    """The outcomes as a Markdown table: case, pass/fail, reason."""
    lines = ["| case | result | reason |", "|---|---|---|"]
    lines += [f"| {o.case} | {'pass' if o.passed else 'FAIL'} | {o.reason} |" for o in outcomes]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.interop.client", description=__doc__)
    parser.add_argument("--address", default="127.0.0.1:50051", help="host:port of the server (plaintext)")
    parser.add_argument("--case", action="append", choices=list(CASES), help="a case to run (default: all)")
    args = parser.parse_args(argv)
    outcomes = asyncio.run(run_cases(args.address, args.case or CASES))
    print(table(outcomes))
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
