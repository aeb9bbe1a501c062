"""python-cqrs mediator keywords, module paths, middlewares and dispatchers (issue 17)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import cqrs
from cqrs.dispatcher import EventDispatcher, RequestDispatcher, StreamingRequestDispatcher
from cqrs.message_brokers import Message, MessageBroker
from cqrs.middlewares import MiddlewareChain
from cqrs.middlewares.logging import LoggingMiddleware


class Ping(cqrs.Request):
    count: int = 2


class Pong(cqrs.Response):
    value: int


class Pinged(cqrs.DomainEvent, frozen=True):
    value: int


class Echoed(cqrs.DomainEvent, frozen=True):
    value: int


class PingHandler(cqrs.RequestHandler[Ping, Pong]):
    async def handle(self, request: Ping) -> Pong:
        for i in range(request.count):
            self.add_event(Pinged(value=i))
        return Pong(value=request.count)


class PingStream(cqrs.StreamingRequestHandler[Ping, Pong]):
    async def handle(self, request: Ping) -> AsyncIterator[Pong]:
        for i in range(request.count):
            self.add_event(Pinged(value=i))
            yield Pong(value=i)


class PingedHandler(cqrs.EventHandler[Pinged]):
    async def handle(self, event: Pinged) -> None:
        self.add_event(Echoed(value=event.value))


class RecordingEmitter:
    """A stand-in for cqrs.EventEmitter: records emits, returns a follow-up for each Pinged."""

    def __init__(self) -> None:
        self.emitted: list[cqrs.Event] = []

    async def emit(self, event: cqrs.Event) -> list[cqrs.Event]:
        self.emitted.append(event)
        return [Echoed(value=event.value)] if isinstance(event, Pinged) else []


def _requests(handler: type[Any]) -> cqrs.RequestMap:
    request_map = cqrs.RequestMap()
    request_map.bind(Ping, handler)
    return request_map


async def test_request_mediator_hands_every_event_and_follow_up_to_the_emitter() -> None:
    emitter = RecordingEmitter()
    mediator = cqrs.RequestMediator(_requests(PingHandler), event_emitter=emitter)  # type: ignore[arg-type]
    assert await mediator.send(Ping()) == Pong(value=2)
    assert emitter.emitted == [Pinged(value=0), Pinged(value=1), Echoed(value=0), Echoed(value=1)]


async def test_streaming_mediator_emits_each_items_events() -> None:
    emitter = RecordingEmitter()
    mediator = cqrs.StreamingRequestMediator(_requests(PingStream), event_emitter=emitter)  # type: ignore[arg-type]
    items = [item async for item in mediator.stream(Ping(count=2))]
    assert items == [Pong(value=0), Pong(value=1)]
    assert [type(e).__name__ for e in emitter.emitted] == ["Pinged", "Echoed", "Pinged", "Echoed"]


async def test_a_real_emitter_runs_the_handlers_bound_in_its_map() -> None:
    got: list[cqrs.Event] = []

    class EchoedHandler(cqrs.EventHandler[Echoed]):
        async def handle(self, event: Echoed) -> None:
            got.append(event)

    event_map = cqrs.EventMap()
    event_map.bind(Pinged, PingedHandler)
    event_map.bind(Echoed, EchoedHandler)
    emitter = cqrs.EventEmitter(event_map, cqrs.Container())
    mediator = cqrs.RequestMediator(
        _requests(PingHandler), event_emitter=emitter, concurrent_event_handle_enable=True
    )
    await mediator.send(Ping())
    assert sorted(e.value for e in got) == [0, 1]  # type: ignore[attr-defined]


async def test_message_broker_keyword_sends_notification_events() -> None:
    class Notify(cqrs.RequestHandler[Ping, None]):
        async def handle(self, request: Ping) -> None:
            self.add_event(cqrs.NotificationEvent(event_name="pinged", topic="pings"))

    class Broker(MessageBroker):
        def __init__(self) -> None:
            self.messages: list[Message] = []

        async def send_message(self, message: Message) -> None:
            self.messages.append(message)

    broker = Broker()
    mediator = cqrs.RequestMediator(_requests(Notify), message_broker=broker)
    await mediator.send(Ping())
    assert [m.topic for m in broker.messages] == ["pings"]
    assert mediator.event_emitter is not None and mediator.event_emitter.message_broker is broker


def test_upstream_event_keywords_override_settings() -> None:
    mediator = cqrs.RequestMediator(
        _requests(PingHandler),
        settings=cqrs.MediatorSettings(max_event_depth=3),
        max_concurrent_event_handlers=4,
        concurrent_event_handle_enable=True,
    )
    assert mediator.settings.max_concurrent_event_handlers == 4
    assert mediator.settings.concurrent_event_handle_enable is True
    assert mediator.settings.max_event_depth == 3


async def test_middleware_chain_keyword_wraps_send() -> None:
    calls: list[str] = []

    class Mark:
        def __init__(self, name: str) -> None:
            self.name = name

        async def __call__(self, request: Any, next: Any) -> Any:
            calls.append(self.name)
            return await next(request)

    chain = MiddlewareChain()
    chain.set([Mark("a")])
    chain.add(Mark("b"))
    mediator = cqrs.RequestMediator(
        _requests(PingHandler), middlewares=[LoggingMiddleware()], middleware_chain=chain
    )
    await mediator.send(Ping())
    assert calls == ["a", "b"]


def test_a_custom_dispatcher_type_is_refused() -> None:
    class Mine:
        pass

    with pytest.raises(TypeError, match="custom dispatchers"):
        cqrs.RequestMediator(_requests(PingHandler), dispatcher_type=Mine)
    cqrs.StreamingRequestMediator(_requests(PingStream), dispatcher_type=StreamingRequestDispatcher)


def test_python_cqrs_module_paths() -> None:
    import cqrs.mediator
    import cqrs.response

    assert cqrs.mediator.StreamingRequestMediator is cqrs.StreamingRequestMediator
    assert cqrs.mediator.EventMediator is cqrs.EventMediator
    assert cqrs.response.Response is cqrs.Response


class SyncStream(cqrs.SyncStreamingRequestHandler[Ping, Pong]):
    def handle(self, request: Ping) -> Iterator[Pong]:
        for i in range(request.count):
            self.add_event(Pinged(value=i))
            yield Pong(value=i)


def test_mediators_refuse_a_sync_streaming_handler_with_a_reason() -> None:
    with pytest.raises(cqrs.InvalidHandlerError, match="plain generator"):
        cqrs.StreamingRequestMediator(_requests(SyncStream))


async def test_request_dispatcher_returns_response_and_events_through_the_chain() -> None:
    chain = MiddlewareChain([LoggingMiddleware()])
    result = await RequestDispatcher(_requests(PingHandler), cqrs.Container(), chain).dispatch(Ping())
    assert result.response == Pong(value=2) and list(result.events) == [Pinged(value=0), Pinged(value=1)]


@pytest.mark.parametrize("handler", [PingStream, SyncStream])
async def test_streaming_dispatcher_yields_each_item_with_its_events(handler: type[Any]) -> None:
    results = [
        r async for r in StreamingRequestDispatcher(_requests(handler), cqrs.Container()).dispatch(Ping())
    ]
    assert [(r.response.value, list(r.events)) for r in results] == [
        (0, [Pinged(value=0)]),
        (1, [Pinged(value=1)]),
    ]


async def test_streaming_dispatcher_names_what_it_did_not_find() -> None:
    with pytest.raises(cqrs.HandlerNotFoundError, match="StreamingRequestHandler not found"):
        async for _ in StreamingRequestDispatcher(cqrs.RequestMap(), cqrs.Container()).dispatch(Ping()):
            pass


async def test_event_dispatcher_handles_follow_ups() -> None:
    got: list[int] = []

    class EchoedHandler(cqrs.EventHandler[Echoed]):
        async def handle(self, event: Echoed) -> None:
            got.append(event.value)

    event_map = cqrs.EventMap()
    event_map.bind(Pinged, PingedHandler)
    event_map.bind(Echoed, EchoedHandler)
    await EventDispatcher(event_map, cqrs.Container()).dispatch(Pinged(value=7))
    assert got == [7]
