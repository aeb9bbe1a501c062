"""Start-up validation: the server refuses to start and names the RPC, the class and the field."""

from __future__ import annotations

import typing
from datetime import datetime

import pytest
from google.protobuf import empty_pb2
from sample.files.v1 import files_pb2

import cqrs
from cqrs.requests import bootstrap
from cqrs.requests.request_handler import StreamingRequestHandler
from emptytest.v1 import empty_test_pb2, empty_test_pb2_grpc
from server import App, StartupError
from server.testing import serve_for_test
from tests.server.sample import (
    FileProcessedResult,
    GetFileStatusQuery,
    GetFileStatusQueryHandler,
    ProcessFilesCommand,
    ProcessFilesCommandHandler,
)
from tests.server.sample import ProcessFilesCommand as SampleProcessFiles

PROCESS = "sample.files.v1.FileService/ProcessFiles"


def _unary() -> cqrs.RequestMediator:
    return bootstrap.bootstrap(queries_mapper=lambda m: m.bind(GetFileStatusQuery, GetFileStatusQueryHandler))


def _streaming(request_type: type[typing.Any], handler: type[typing.Any]) -> cqrs.StreamingRequestMediator:
    return bootstrap.bootstrap_streaming(commands_mapper=lambda m: m.bind(request_type, handler))


def test_rpcs_route_by_input_message_name_to_the_right_mediator() -> None:
    app = App(
        streaming_mediator=_streaming(ProcessFilesCommand, ProcessFilesCommandHandler), mediator=_unary()
    )
    app.add_services(files_pb2)
    routes = {route.key: route for route in app.routes}
    assert routes[PROCESS].streaming and routes[PROCESS].request_type is ProcessFilesCommand
    assert routes[PROCESS].response_type is FileProcessedResult
    status = routes["sample.files.v1.FileService/GetFileStatus"]
    assert not status.streaming and status.request_type is GetFileStatusQuery


def test_an_rpc_without_a_handler_refuses_to_start() -> None:
    app = App(streaming_mediator=_streaming(ProcessFilesCommand, ProcessFilesCommandHandler))
    with pytest.raises(StartupError) as refused:
        app.add_services(files_pb2)
    [problem] = refused.value.problems
    assert "rpc sample.files.v1.FileService/GetFileStatus" in problem
    assert "App has no mediator" in problem


def test_a_request_class_bound_to_the_wrong_mediator_is_named() -> None:
    unary = bootstrap.bootstrap(
        queries_mapper=lambda m: m.bind(GetFileStatusQuery, GetFileStatusQueryHandler),
    )
    other = _streaming(GetFileStatusQuery, _StreamingStatus)
    app = App(streaming_mediator=other, mediator=unary)
    with pytest.raises(StartupError) as refused:
        app.add_services(files_pb2)
    [problem] = refused.value.problems
    assert f"rpc {PROCESS} has no handler" in problem and "ProcessFilesCommand" in problem


class _StreamingStatus(StreamingRequestHandler[GetFileStatusQuery, FileProcessedResult]):
    async def handle(self, request: GetFileStatusQuery) -> typing.AsyncIterator[FileProcessedResult]:
        if False:
            yield


class RenamedCommand(cqrs.Request):
    file_ids: list[str]


class RenamedHandler(StreamingRequestHandler[RenamedCommand, FileProcessedResult]):
    async def handle(self, request: RenamedCommand) -> typing.AsyncIterator[FileProcessedResult]:
        if False:
            yield


def test_bindings_override_name_based_routing_and_unknown_keys_are_refused() -> None:
    app = App(streaming_mediator=_streaming(RenamedCommand, RenamedHandler), mediator=_unary())
    app.add_services(files_pb2, bindings={PROCESS: RenamedCommand})
    assert {r.key: r.request_type for r in app.routes}[PROCESS] is RenamedCommand
    app = App(streaming_mediator=_streaming(RenamedCommand, RenamedHandler), mediator=_unary())
    with pytest.raises(StartupError) as refused:
        app.add_services(
            files_pb2, bindings={PROCESS: RenamedCommand, "sample.files.v1.FileService/Nope": RenamedCommand}
        )
    assert any("'sample.files.v1.FileService/Nope', which is not an RPC" in p for p in refused.value.problems)


class MissingFieldCommand(cqrs.Request):
    ids: list[str]


class MissingFieldHandler(StreamingRequestHandler[MissingFieldCommand, FileProcessedResult]):
    async def handle(self, request: MissingFieldCommand) -> typing.AsyncIterator[FileProcessedResult]:
        if False:
            yield


class ShortResult(cqrs.Response):
    file_id: str
    status: str
    processed_at: datetime
    index: int
    total: int
    checksum: str


class ExtraFieldHandler(StreamingRequestHandler[ProcessFilesCommand, ShortResult]):
    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[ShortResult]:
        if False:
            yield


def test_field_mismatch_on_either_side_names_rpc_class_and_field() -> None:
    app = App(streaming_mediator=_streaming(MissingFieldCommand, MissingFieldHandler), mediator=_unary())
    with pytest.raises(StartupError) as refused:
        app.add_services(files_pb2, bindings={PROCESS: MissingFieldCommand})
    text = str(refused.value)
    assert f"rpc {PROCESS} request" in text and "MissingFieldCommand" in text and "file_ids" in text

    app = App(streaming_mediator=_streaming(ProcessFilesCommand, ExtraFieldHandler), mediator=_unary())
    with pytest.raises(StartupError) as refused:
        app.add_services(files_pb2)
    text = str(refused.value)
    assert f"rpc {PROCESS} response" in text and "ShortResult" in text and "checksum" in text


def test_a_streaming_rpc_whose_handler_is_not_an_async_generator_is_refused() -> None:
    class NotAGenerator(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
        async def handle(self, request: ProcessFilesCommand) -> typing.Any:  # forgot to yield
            return None

    with pytest.raises(Exception) as refused:  # refused by cqrs at bind time, or by the server at start-up
        App(
            streaming_mediator=_streaming(ProcessFilesCommand, NotAGenerator), mediator=_unary()
        ).add_services(files_pb2)
    assert "NotAGenerator" in str(refused.value) and "async generator" in str(refused.value)


class TicksQuery(cqrs.Request):
    pass


class Tick(cqrs.Response):
    n: int


class TicksHandler(StreamingRequestHandler[TicksQuery, Tick]):
    async def handle(self, request: TicksQuery) -> typing.AsyncIterator[Tick]:
        for n in range(3):
            yield Tick(n=n)


class ResetCommand(cqrs.Request):
    pass


class Reset(cqrs.Response):
    pass


class ResetHandler(cqrs.RequestHandler[ResetCommand, Reset]):
    async def handle(self, request: ResetCommand) -> Reset:
        return Reset()


def _clock_app() -> App:
    return App(
        streaming_mediator=bootstrap.bootstrap_streaming(
            queries_mapper=lambda m: m.bind(TicksQuery, TicksHandler)
        ),
        mediator=bootstrap.bootstrap(commands_mapper=lambda m: m.bind(ResetCommand, ResetHandler)),
    )


def test_an_rpc_taking_a_shared_message_like_empty_is_told_to_use_bindings() -> None:
    with pytest.raises(StartupError) as refused:
        _clock_app().add_services(empty_test_pb2)
    ticks, reset = refused.value.problems
    assert "google.protobuf.Empty comes from google/protobuf/empty.proto" in ticks
    assert 'bindings={"emptytest.v1.Clock/Ticks": YourRequest}' in ticks
    assert 'bindings={"emptytest.v1.Clock/Reset": YourRequest}' in reset
    with pytest.raises(StartupError) as refused:
        App(streaming_mediator=_streaming(RenamedCommand, RenamedHandler), mediator=_unary()).add_services(
            files_pb2
        )
    assert (
        f'bind a Request class named ProcessFilesCommand, or name one for this RPC with add_services(..., bindings={{"{PROCESS}"'
        in str(refused.value)
    )


async def test_rpcs_taking_and_returning_empty_are_served_once_bound() -> None:
    app = _clock_app()
    app.add_services(
        empty_test_pb2,
        bindings={"emptytest.v1.Clock/Ticks": TicksQuery, "emptytest.v1.Clock/Reset": ResetCommand},
    )
    async with serve_for_test(app) as served:
        stub = served.stub(empty_test_pb2_grpc.ClockStub)
        assert [tick.n async for tick in stub.Ticks(empty_pb2.Empty())] == [0, 1, 2]
        assert await stub.Reset(empty_pb2.Empty()) == empty_pb2.Empty()


def test_a_request_name_that_fits_two_bound_classes_is_one_problem_with_its_fix() -> None:
    class ProcessFilesCommand(cqrs.Request):  # same name as tests.server.sample's, another class
        file_ids: list[str]

    class Other(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
        async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
            if False:
                yield

    def bind(m: typing.Any) -> None:
        m.bind(ProcessFilesCommand, Other)
        m.bind(SampleProcessFiles, ProcessFilesCommandHandler)

    app = App(streaming_mediator=bootstrap.bootstrap_streaming(commands_mapper=bind), mediator=_unary())
    with pytest.raises(StartupError) as refused:
        app.add_services(files_pb2)
    [problem] = refused.value.problems
    assert f"rpc {PROCESS}: several bound Request classes are named ProcessFilesCommand" in problem
    assert "pick one with bindings=" in problem
