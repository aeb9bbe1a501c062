"""The seed's streaming example (ARCHITECTURE.md, last section), verbatim, wired with bootstrap_streaming."""

# ruff: noqa: I001
# --- verbatim from the seed -------------------------------------------------------------------------
# fmt: off
import typing
from datetime import datetime
import cqrs
from cqrs.requests.request_handler import StreamingRequestHandler
from cqrs.events.event import Event

class ProcessFilesCommand(cqrs.Request):
    file_ids: list[str]

class FileProcessedResult(cqrs.Response):
    file_id: str
    status: str
    processed_at: datetime

class ProcessFilesCommandHandler(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    def __init__(self):
        self._events: list[Event] = []

    @property
    def events(self) -> list[Event]:
        return self._events.copy()

    def clear_events(self) -> None:
        self._events.clear()

    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        for file_id in request.file_ids:
            result = FileProcessedResult(file_id=file_id, status="completed", processed_at=datetime.now())
            self._events.append(FileProcessedEvent(file_id=file_id))   # FileProcessedEvent: a cqrs.DomainEvent
            yield result   # events are processed after this yield
# fmt: on
# --- end of the seed ----------------------------------------------------------------------------------

from cqrs.requests import bootstrap  # noqa: E402


class FileProcessedEvent(cqrs.DomainEvent):
    file_id: str


HANDLED: list[str] = []


class FileProcessedEventHandler(cqrs.EventHandler[FileProcessedEvent]):
    async def handle(self, event: FileProcessedEvent) -> None:
        HANDLED.append(event.file_id)


async def test_seed_example_streams_results_and_handles_events() -> None:
    HANDLED.clear()
    mediator = bootstrap.bootstrap_streaming(
        di_container=None,
        commands_mapper=lambda m: m.bind(ProcessFilesCommand, ProcessFilesCommandHandler),
        domain_events_mapper=lambda m: m.bind(FileProcessedEvent, FileProcessedEventHandler),
        max_concurrent_event_handlers=2,
        concurrent_event_handle_enable=False,
    )
    seen: list[tuple[str, list[str]]] = []
    async for result in mediator.stream(ProcessFilesCommand(file_ids=["a", "b", "c"])):
        assert isinstance(result, FileProcessedResult)
        assert result.status == "completed"
        seen.append((result.file_id, list(HANDLED)))
    # before_send (default, as in python-cqrs): item k is released after its events ran
    assert seen == [("a", ["a"]), ("b", ["a", "b"]), ("c", ["a", "b", "c"])]
    assert HANDLED == ["a", "b", "c"]


async def test_seed_example_with_concurrent_handlers_and_before_send() -> None:
    HANDLED.clear()
    mediator = cqrs.bootstrap_streaming(
        commands_mapper=lambda m: m.bind(ProcessFilesCommand, ProcessFilesCommandHandler),
        domain_events_mapper=lambda m: m.bind(FileProcessedEvent, FileProcessedEventHandler),
        max_concurrent_event_handlers=4,
        concurrent_event_handle_enable=True,
        event_timing="before_send",
    )
    ids = [r.file_id async for r in mediator.stream(ProcessFilesCommand(file_ids=["x", "y"]))]
    assert ids == ["x", "y"]
    assert HANDLED == ["x", "y"]
