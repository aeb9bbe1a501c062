"""A test service whose handler counts, blocks, floods or fails on demand (tests/protos/streamtest)."""

from __future__ import annotations

import asyncio
import typing
from typing import Any

import grpc

import cqrs
from cqrs.requests import bootstrap
from cqrs.requests.request_handler import StreamingRequestHandler
from server import App, ServerSettings, current_rpc, maybe_current_rpc
from streamtest.v1 import stream_test_pb2


class TicksCommand(cqrs.Request):
    count: int
    payload_bytes: int
    mode: str
    name: str


class Tick(cqrs.Response):
    seq: int
    payload: bytes


class EchoQuery(cqrs.Request):
    text: str


class EchoReply(cqrs.Response):
    text: str


class TickEvent(cqrs.DomainEvent):
    seq: int


class Probe:
    """What the handlers did, shared with the test through the container."""

    def __init__(self) -> None:
        self.produced = 0
        self.open_streams = 0
        self.started = asyncio.Event()
        self.closed = asyncio.Event()
        self.closed_at: list[float] = []
        self.closed_in_rpc_task: list[bool] = []
        self.handled_events = 0


class TicksHandler(StreamingRequestHandler[TicksCommand, Tick]):
    """mode "count": ``count`` ticks; "block": ``count`` ticks then wait forever; "flood": ticks without end;
    "event-fails": ``count`` ticks, each with an event whose handler raises."""

    def __init__(self, probe: Probe) -> None:
        self._probe = probe
        self._events: list[cqrs.DomainEvent] = []

    @property
    def events(self) -> list[cqrs.DomainEvent]:
        return self._events.copy()

    def clear_events(self) -> None:
        self._events.clear()

    async def handle(self, request: TicksCommand) -> typing.AsyncIterator[Tick]:
        violations = [
            cqrs.FieldViolation(name, f"must be between 0 and {limit}")
            for name, value, limit in (
                ("count", request.count, 10_000),
                ("payload_bytes", request.payload_bytes, 1 << 20),
            )
            if not 0 <= value <= limit
        ]
        if violations:
            raise cqrs.ValidationError("the request is out of range", violations=violations)
        probe = self._probe
        task = asyncio.current_task()
        probe.open_streams += 1
        payload = b"x" * request.payload_bytes
        try:
            seq = 0
            while request.mode == "flood" or seq < request.count:
                seq += 1
                probe.produced += 1
                if request.mode.startswith("event"):
                    self._events.append(TickEvent(seq=seq))
                yield Tick(seq=seq, payload=payload)
            if request.mode in ("abort", "abort-then-yield"):  # a handler that ends the call itself
                rpc = current_rpc()
                try:
                    await rpc.grpc_context.abort(
                        grpc.StatusCode.NOT_FOUND, f"no ticks named {request.name!r}"
                    )
                except grpc.aio.AbortError:
                    if request.mode == "abort":
                        raise
                    yield Tick(seq=seq + 1, payload=payload)  # swallowed, and one more: grpc refuses it
            if request.mode == "block":
                probe.started.set()
                await asyncio.Event().wait()
        finally:
            probe.open_streams -= 1
            probe.closed_at.append(asyncio.get_running_loop().time())
            probe.closed_in_rpc_task.append(
                asyncio.current_task() is task and maybe_current_rpc() is not None
            )
            probe.closed.set()


class FailingTickHandler(cqrs.EventHandler[TickEvent]):
    def __init__(self, probe: Probe) -> None:
        self._probe = probe

    async def handle(self, event: TickEvent) -> None:
        self._probe.handled_events += 1
        raise RuntimeError(f"event handler failed on tick {event.seq}")


class EchoHandler(cqrs.RequestHandler[EchoQuery, EchoReply]):
    async def handle(self, request: EchoQuery) -> EchoReply:
        if not request.text:
            raise cqrs.ValidationError.for_field("text", "must not be empty")
        if request.text == "whoami":  # who the server says is calling (auth and mTLS tests)
            rpc = current_rpc()
            identity = rpc.client_identity
            cn, sans = (identity.common_name, ",".join(identity.sans)) if identity else ("-", "-")
            return EchoReply(text=f"principal={rpc.principal} cn={cn} sans={sans}")
        return EchoReply(text=request.text)


def ticks_app(
    probe: Probe | None = None,
    settings: ServerSettings | None = None,
    stream_settings: dict[str, Any] | None = None,
) -> App:
    """An App serving streamtest.v1.TickService (also a ``python -m server --app`` factory)."""
    container = cqrs.Container()
    container.register_instance(Probe, probe or Probe())
    stream_mediator = bootstrap.bootstrap_streaming(
        di_container=container,
        commands_mapper=lambda m: m.bind(TicksCommand, TicksHandler),
        domain_events_mapper=lambda m: m.bind(TickEvent, FailingTickHandler),
        **(stream_settings or {}),
    )
    mediator = bootstrap.bootstrap(
        di_container=container, queries_mapper=lambda m: m.bind(EchoQuery, EchoHandler)
    )
    app = App(streaming_mediator=stream_mediator, mediator=mediator, settings=settings)
    app.add_services(stream_test_pb2)
    return app
