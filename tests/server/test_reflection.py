"""Server reflection (v1 and v1alpha) on a real grpc.aio server, asked by grpc.aio and by `buf curl`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from demo.files.v1 import files_pb2
from server.health import Health
from server.reflection import V1, V1ALPHA, Reflection, enable_reflection

FILES = "demo.files.v1.FileService"
HEALTH = "grpc.health.v1.Health"
BUF = Path(__file__).resolve().parents[2] / "tools" / "node_modules" / ".bin" / "buf"

# grpc.reflection.v1 as published in grpc/grpc src/proto/grpc/reflection/v1/reflection.proto: the wire
# contract we serve with the v1alpha classes. (message, field) -> (number, descriptor type, repeated, oneof)
_S, _M, _B, _I = 9, 11, 12, 5
V1_FIELDS = {
    ("ServerReflectionRequest", "host"): (1, _S, False, None),
    ("ServerReflectionRequest", "file_by_filename"): (3, _S, False, "message_request"),
    ("ServerReflectionRequest", "file_containing_symbol"): (4, _S, False, "message_request"),
    ("ServerReflectionRequest", "file_containing_extension"): (5, _M, False, "message_request"),
    ("ServerReflectionRequest", "all_extension_numbers_of_type"): (6, _S, False, "message_request"),
    ("ServerReflectionRequest", "list_services"): (7, _S, False, "message_request"),
    ("ExtensionRequest", "containing_type"): (1, _S, False, None),
    ("ExtensionRequest", "extension_number"): (2, _I, False, None),
    ("ServerReflectionResponse", "valid_host"): (1, _S, False, None),
    ("ServerReflectionResponse", "original_request"): (2, _M, False, None),
    ("ServerReflectionResponse", "file_descriptor_response"): (4, _M, False, "message_response"),
    ("ServerReflectionResponse", "all_extension_numbers_response"): (5, _M, False, "message_response"),
    ("ServerReflectionResponse", "list_services_response"): (6, _M, False, "message_response"),
    ("ServerReflectionResponse", "error_response"): (7, _M, False, "message_response"),
    ("FileDescriptorResponse", "file_descriptor_proto"): (1, _B, True, None),
    ("ExtensionNumberResponse", "base_type_name"): (1, _S, False, None),
    ("ExtensionNumberResponse", "extension_number"): (2, _I, True, None),
    ("ListServiceResponse", "service"): (1, _M, True, None),
    ("ServiceResponse", "name"): (1, _S, False, None),
    ("ErrorResponse", "error_code"): (1, _I, False, None),
    ("ErrorResponse", "error_message"): (2, _S, False, None),
}


def _fields(file: Any) -> dict[tuple[str, str], tuple[int, int, bool, str | None]]:
    return {
        (message.name, f.name): (
            f.number,
            f.type,
            f.is_repeated,
            f.containing_oneof.name if f.containing_oneof else None,
        )
        for message in file.message_types_by_name.values()
        for f in message.fields
    }


def test_v1alpha_messages_are_wire_identical_to_v1() -> None:
    assert _fields(reflection_pb2.DESCRIPTOR) == V1_FIELDS


def test_the_served_v1_file_describes_the_v1_package() -> None:
    reflection = Reflection([])
    response = reflection.answer(reflection_pb2.ServerReflectionRequest(file_containing_symbol=V1))
    pool = _load(response.file_descriptor_response.file_descriptor_proto)
    v1 = pool.FindFileByName("grpc/reflection/v1/reflection.proto")
    assert _fields(v1) == V1_FIELDS
    method = pool.FindMethodByName(f"{V1}.ServerReflectionInfo")
    assert method.input_type.full_name == "grpc.reflection.v1.ServerReflectionRequest"
    assert method.output_type.full_name == "grpc.reflection.v1.ServerReflectionResponse"


# -- an in-process server: the demo FileService (a test-only generic handler), health, reflection ----------


async def _process_files(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
    for index, file_id in enumerate(request.file_ids, start=1):
        yield files_pb2.FileProcessedResult(
            file_id=file_id, status="completed", index=index, total=len(request.file_ids)
        )


async def _get_file_status(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    return files_pb2.FileStatus(file_id=request.file_id, status="completed")


def _file_service() -> grpc.GenericRpcHandler[Any, Any]:
    return grpc.method_handlers_generic_handler(
        FILES,
        {
            "ProcessFiles": grpc.unary_stream_rpc_method_handler(
                _process_files,
                request_deserializer=files_pb2.ProcessFilesCommand.FromString,
                response_serializer=files_pb2.FileProcessedResult.SerializeToString,
            ),
            "GetFileStatus": grpc.unary_unary_rpc_method_handler(
                _get_file_status,
                request_deserializer=files_pb2.GetFileStatusQuery.FromString,
                response_serializer=files_pb2.FileStatus.SerializeToString,
            ),
        },
    )


@pytest.fixture
async def port() -> AsyncIterator[int]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([_file_service()])
    health = Health([FILES])
    health.register(server)
    enable_reflection([FILES, *health.service_names_served()], server)
    bound = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    health.set_serving()
    try:
        yield bound
    finally:
        await server.stop(None)


@pytest.fixture
async def channel(port: int) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel


def _stream(channel: grpc.aio.Channel, service: str) -> Any:
    call = channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return call(timeout=5)


async def _ask(stream: Any, **request: Any) -> Any:
    await stream.write(reflection_pb2.ServerReflectionRequest(**request))
    return await stream.read()


def _load(serialized: Iterator[bytes]) -> descriptor_pool.DescriptorPool:
    """Build the files a client received into a fresh pool, in any order, as grpcurl and buf curl do."""
    protos = {p.name: p for p in (descriptor_pb2.FileDescriptorProto.FromString(b) for b in serialized)}
    pool = descriptor_pool.DescriptorPool()

    def add(name: str) -> None:
        proto = protos.pop(name, None)
        if proto is not None:
            for dependency in proto.dependency:
                add(dependency)
            pool.Add(proto)

    for name in list(protos):
        add(name)
    return pool


def _names(response: Any) -> list[str]:
    protos = response.file_descriptor_response.file_descriptor_proto
    return [descriptor_pb2.FileDescriptorProto.FromString(b).name for b in protos]


@pytest.mark.parametrize("version", [V1, V1ALPHA])
async def test_list_services(channel: grpc.aio.Channel, version: str) -> None:
    stream = _stream(channel, version)
    response = await _ask(stream, list_services="")
    names = [s.name for s in response.list_services_response.service]
    assert names == sorted([FILES, HEALTH, V1, V1ALPHA])
    await stream.done_writing()


@pytest.mark.parametrize("version", [V1, V1ALPHA])
async def test_file_containing_symbol_sends_dependencies_once_per_stream(
    channel: grpc.aio.Channel, version: str
) -> None:
    stream = _stream(channel, version)
    first = await _ask(stream, file_containing_symbol=FILES)
    assert _names(first) == ["demo/files/v1/files.proto", "google/protobuf/timestamp.proto"]
    pool = _load(first.file_descriptor_response.file_descriptor_proto)
    method = pool.FindMethodByName(f"{FILES}.ProcessFiles")
    assert method.server_streaming
    processed_at = method.output_type.fields_by_name["processed_at"].message_type
    assert processed_at is not None
    assert processed_at.full_name == "google.protobuf.Timestamp"
    # The client already holds timestamp.proto: only the requested file comes again.
    again = await _ask(stream, file_containing_symbol="demo.files.v1.FileStatus")
    assert _names(again) == ["demo/files/v1/files.proto"]
    await stream.done_writing()


@pytest.mark.parametrize(
    ("symbol", "file"),
    [
        (FILES, "demo/files/v1/files.proto"),
        (f"{FILES}.ProcessFiles", "demo/files/v1/files.proto"),  # a method
        ("demo.files.v1.ProcessFilesCommand", "demo/files/v1/files.proto"),  # a message
        (".demo.files.v1.FileStatus", "demo/files/v1/files.proto"),  # leading dot, as in type_name
        ("demo.files.v1.FileStatus.processed_at", "demo/files/v1/files.proto"),  # a field
        ("grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc_health/v1/health.proto"),  # nested enum
        ("google.protobuf.Timestamp", "google/protobuf/timestamp.proto"),
        (f"{HEALTH}.Watch", "grpc_health/v1/health.proto"),
        (f"{V1}.ServerReflectionInfo", "grpc/reflection/v1/reflection.proto"),
        (V1ALPHA, "grpc_reflection/v1alpha/reflection.proto"),
    ],
)
async def test_file_containing_symbol(channel: grpc.aio.Channel, symbol: str, file: str) -> None:
    stream = _stream(channel, V1)
    response = await _ask(stream, file_containing_symbol=symbol)
    assert _names(response)[0] == file
    await stream.done_writing()


async def test_file_by_filename_and_errors(channel: grpc.aio.Channel) -> None:
    stream = _stream(channel, V1)
    found = await _ask(stream, file_by_filename="demo/files/v1/files.proto")
    assert _names(found) == ["demo/files/v1/files.proto", "google/protobuf/timestamp.proto"]
    assert found.original_request.file_by_filename == "demo/files/v1/files.proto"

    missing = await _ask(stream, file_by_filename="no/such.proto")
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "no/such.proto" in missing.error_response.error_message

    unknown = await _ask(stream, file_containing_symbol="demo.files.v1.Nope")
    assert unknown.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]

    extension = reflection_pb2.ExtensionRequest(
        containing_type="google.protobuf.MessageOptions", extension_number=99999
    )
    no_extension = await _ask(stream, file_containing_extension=extension)
    assert no_extension.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]

    numbers = await _ask(stream, all_extension_numbers_of_type="google.protobuf.Timestamp")
    assert numbers.all_extension_numbers_response.base_type_name == "google.protobuf.Timestamp"
    assert list(numbers.all_extension_numbers_response.extension_number) == []

    no_type = await _ask(stream, all_extension_numbers_of_type="demo.files.v1.Nope")
    assert no_type.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]

    empty = await _ask(stream)
    assert empty.error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    await stream.done_writing()


# -- buf curl, by reflection, as a user would run it -----------------------------------------------------


async def _buf_curl(port: int, *args: str) -> str:
    """Run `buf curl` without blocking the loop that serves it; fail (never skip) if buf is missing."""
    assert BUF.exists(), f"{BUF} is missing: run `cd tools && npm ci` (the Makefile's install does)"
    process = await asyncio.create_subprocess_exec(
        str(BUF),
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=15)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"buf curl {' '.join(args)} failed: {err.decode()}"
    return out.decode()


@pytest.mark.parametrize("protocol", ["grpc-v1", "grpc-v1alpha"])
async def test_buf_curl_lists_services_and_methods(port: int, protocol: str) -> None:
    base = f"http://127.0.0.1:{port}"
    services = await _buf_curl(port, "--reflect-protocol", protocol, "--list-services", base)
    assert services.split() == sorted([FILES, HEALTH, V1, V1ALPHA])
    methods = (await _buf_curl(port, "--reflect-protocol", protocol, "--list-methods", base)).split()
    assert f"{FILES}/ProcessFiles" in methods
    assert f"{FILES}/GetFileStatus" in methods
    assert f"{HEALTH}/Check" in methods
    assert f"{V1}/ServerReflectionInfo" in methods


async def test_buf_curl_calls_unary_and_streaming_rpcs_by_reflection(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    unary = await _buf_curl(port, "--data", '{"file_id": "a"}', f"{base}/{FILES}/GetFileStatus")
    assert json.loads(unary) == {"fileId": "a", "status": "completed"}

    streamed = await _buf_curl(port, "--data", '{"file_ids": ["a", "b"]}', f"{base}/{FILES}/ProcessFiles")
    decoder, results, rest = json.JSONDecoder(), [], streamed.strip()
    while rest:  # buf curl prints one JSON document per streamed message
        result, end = decoder.raw_decode(rest)
        results.append(result)
        rest = rest[end:].strip()
    assert [(r["fileId"], r["index"], r["total"]) for r in results] == [("a", 1, 2), ("b", 2, 2)]


async def test_buf_curl_health_check(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    overall = await _buf_curl(port, "--data", "{}", f"{base}/{HEALTH}/Check")
    assert json.loads(overall) == {"status": "SERVING"}
    files = await _buf_curl(port, "--data", json.dumps({"service": FILES}), f"{base}/{HEALTH}/Check")
    assert json.loads(files)["status"] == health_pb2.HealthCheckResponse.ServingStatus.Name(
        health_pb2.HealthCheckResponse.SERVING
    )
