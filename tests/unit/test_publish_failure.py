"""A broker that fails fails the send or the stream, under either failure policy: an item is never
released as if its events had left the process (the bus's guarantee 1, without a bus)."""

from __future__ import annotations

import typing

import pytest

import cqrs
from cqrs.message_brokers import Message, MessageBroker
from cqrs.requests.request_handler import StreamingRequestHandler


class Noted(cqrs.NotificationEvent[dict[str, int]]):
    pass


class Go(cqrs.Request):
    n: int


class Item(cqrs.Response):
    n: int


class GoStream(StreamingRequestHandler[Go, Item]):
    def __init__(self) -> None:
        self._events: list[cqrs.Event] = []

    @property
    def events(self) -> list[cqrs.Event]:
        return self._events.copy()

    def clear_events(self) -> None:
        self._events.clear()

    async def handle(self, request: Go) -> typing.AsyncIterator[Item]:
        for n in range(request.n):
            self._events.append(Noted(event_name="noted", payload={"n": n}))
            yield Item(n=n)


class DownBroker(MessageBroker):
    def __init__(self, fail_from: int = 0) -> None:
        self.sent: list[Message] = []
        self.fail_from = fail_from

    async def send_message(self, message: Message) -> None:
        if len(self.sent) >= self.fail_from:
            raise cqrs.UnavailableError("the bus is down")
        self.sent.append(message)


@pytest.mark.parametrize("policy", ["isolate", "fail"])
async def test_an_item_whose_event_cannot_be_published_is_not_released(policy: typing.Any) -> None:
    broker = DownBroker(fail_from=1)
    mediator = cqrs.bootstrap_streaming(
        commands_mapper=lambda m: m.bind(Go, GoStream),
        message_broker=broker,
        event_failure_policy=policy,
    )
    received = []
    with pytest.raises(cqrs.UnavailableError):
        async for item in mediator.stream(Go(n=3)):
            received.append(item.n)
    assert received == [0] and len(broker.sent) == 1


class Once(cqrs.Request):
    pass


class OnceHandler(cqrs.RequestHandler[Once, None]):
    def __init__(self) -> None:
        self._events: list[cqrs.Event] = []

    @property
    def events(self) -> list[cqrs.Event]:
        return self._events.copy()

    def clear_events(self) -> None:
        self._events.clear()

    async def handle(self, request: Once) -> None:
        self._events.append(Noted(event_name="noted", payload={"n": 0}))


async def test_a_send_whose_event_cannot_be_published_raises() -> None:
    mediator = cqrs.bootstrap(
        commands_mapper=lambda m: m.bind(Once, OnceHandler), message_broker=DownBroker()
    )
    with pytest.raises(cqrs.UnavailableError):
        await mediator.send(Once())


class Session:
    """A scoped dependency: only a resolver inside the stream's scope can build it."""


class NeedsSession(cqrs.EventHandler[Noted]):
    def __init__(self, session: Session) -> None:
        self._session = session

    async def handle(self, event: Noted) -> None:
        SEEN.append(event.payload)


class Refuses(cqrs.EventHandler[Noted]):
    async def handle(self, event: Noted) -> None:
        raise RuntimeError("the handler refused")


SEEN: list[typing.Any] = []


def _published(handler: type[typing.Any], broker: MessageBroker, **settings: typing.Any) -> typing.Any:
    container = cqrs.Container()
    container.register(Session, lifetime="scoped")
    return cqrs.bootstrap_streaming(
        di_container=container,
        commands_mapper=lambda m: m.bind(Go, GoStream),
        domain_events_mapper=lambda m: m.bind(Noted, handler),
        message_broker=broker,
        **settings,
    )


async def test_with_a_broker_local_handlers_run_in_the_streams_scope_and_events_are_published() -> None:
    SEEN.clear()
    broker = DownBroker(fail_from=10)
    items = [i.n async for i in _published(NeedsSession, broker).stream(Go(n=2))]
    assert items == [0, 1] and SEEN == [{"n": 0}, {"n": 1}]
    assert [m.payload["payload"] for m in broker.sent] == [{"n": 0}, {"n": 1}]


async def test_with_a_broker_the_failure_policy_and_the_stats_still_apply() -> None:
    broker = DownBroker(fail_from=10)
    failing = _published(Refuses, broker, event_failure_policy="fail")
    with pytest.raises(RuntimeError, match="the handler refused"):
        [i async for i in failing.stream(Go(n=2))]
    isolated = _published(Refuses, DownBroker(fail_from=10))
    assert [i.n async for i in isolated.stream(Go(n=2))] == [0, 1]
    assert isolated.stats.event_handler_failures == 2
