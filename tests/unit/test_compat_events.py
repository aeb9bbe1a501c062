"""python-cqrs events: names, topic, EventEmitter, brokers, EventProcessor, EventMediator (issue 17)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import cqrs
from cqrs.events import bootstrap as events_bootstrap
from cqrs.events.event import IDomainEvent, IEvent, INotificationEvent
from cqrs.events.event_processor import EventProcessor
from cqrs.message_brokers import Message, MessageBroker, devnull


class Seen(cqrs.DomainEvent, frozen=True):
    name: str


class Followed(cqrs.DomainEvent, frozen=True):
    name: str


LOG: list[str] = []


class SeenHandler(cqrs.EventHandler[Seen]):
    async def handle(self, event: Seen) -> None:
        LOG.append(f"seen:{event.name}")
        self.add_event(Followed(name=event.name))


class FollowedHandler(cqrs.EventHandler[Followed]):
    async def handle(self, event: Followed) -> None:
        LOG.append(f"followed:{event.name}")


class Failing(cqrs.EventHandler[Seen]):
    async def handle(self, event: Seen) -> None:
        raise RuntimeError("boom")


class Recording(MessageBroker):
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def send_message(self, message: Message) -> None:
        self.messages.append(message)


@pytest.fixture(autouse=True)
def _clear_log() -> None:
    LOG.clear()


def _map(*pairs: tuple[type[Any], Any]) -> cqrs.EventMap:
    event_map = cqrs.EventMap()
    for event_type, handler_type in pairs:
        event_map.bind(event_type, handler_type)
    return event_map


def test_python_cqrs_names_are_our_classes() -> None:
    assert IEvent is cqrs.Event and IDomainEvent is cqrs.DomainEvent
    assert INotificationEvent is cqrs.NotificationEvent is cqrs.ECSTEvent
    assert cqrs.events.EventEmitter is cqrs.EventEmitter


def test_notification_event_has_a_topic() -> None:
    assert cqrs.NotificationEvent(event_name="e", topic="t").topic == "t"
    assert cqrs.NotificationEvent(event_name="e").topic is None


def test_an_event_handler_without_follow_ups_has_empty_tuple_events() -> None:
    assert FollowedHandler().events == ()


async def test_emit_runs_the_handlers_and_returns_their_follow_ups() -> None:
    emitter = cqrs.EventEmitter(_map((Seen, SeenHandler)), cqrs.Container())
    follow_ups = await emitter.emit(Seen(name="a"))
    assert LOG == ["seen:a"] and list(follow_ups) == [Followed(name="a")]


async def test_emit_runs_one_events_handlers_concurrently() -> None:
    started: list[asyncio.Event] = [asyncio.Event(), asyncio.Event()]

    class First(cqrs.EventHandler[Seen]):
        async def handle(self, event: Seen) -> None:
            started[0].set()
            await asyncio.wait_for(started[1].wait(), 1)

    class Second(cqrs.EventHandler[Seen]):
        async def handle(self, event: Seen) -> None:
            started[1].set()
            await asyncio.wait_for(started[0].wait(), 1)

    await cqrs.EventEmitter(_map((Seen, First), (Seen, Second)), cqrs.Container()).emit(Seen(name="p"))


async def test_a_failing_handler_is_logged_and_the_others_still_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emitter = cqrs.EventEmitter(_map((Seen, Failing), (Seen, SeenHandler)), cqrs.Container())
    follow_ups = await emitter.emit(Seen(name="a"))
    assert list(follow_ups) == [Followed(name="a")]
    assert "Failing failed on Seen" in caplog.text


async def test_a_notification_event_goes_to_the_broker_as_a_message() -> None:
    broker = Recording()
    event = cqrs.NotificationEvent(event_name="joined", topic="users", payload={"id": 1})
    assert await cqrs.EventEmitter(cqrs.EventMap(), cqrs.Container(), broker).emit(event) == []
    [message] = broker.messages
    assert (message.message_name, message.topic, message.message_id) == (
        "NotificationEvent",
        "users",
        event.event_id,
    )
    assert message.payload["payload"] == {"id": 1} and message.payload["event_name"] == "joined"


async def test_a_notification_nobody_takes_raises_rather_than_vanishing() -> None:
    with pytest.raises(RuntimeError, match="no message_broker"):
        await cqrs.EventEmitter(cqrs.EventMap(), cqrs.Container()).emit(
            cqrs.NotificationEvent(event_name="x")
        )


async def test_the_devnull_broker_keeps_what_it_is_given() -> None:
    before = len(devnull.MESSAGE_BUS)
    await devnull.DevnullMessageBroker().send_message(Message(message_name="m", topic=None, payload={}))
    assert len(devnull.MESSAGE_BUS) == before + 1


@pytest.mark.parametrize("concurrent", [True, False])
async def test_event_processor_emits_events_and_follow_ups(concurrent: bool) -> None:
    event_map = _map((Seen, SeenHandler), (Followed, FollowedHandler))
    emitter = cqrs.EventEmitter(event_map, cqrs.Container())
    processor = EventProcessor(event_map, emitter, 2, concurrent)
    await processor.emit_events([Seen(name="a"), Seen(name="b")])
    assert sorted(LOG) == ["followed:a", "followed:b", "seen:a", "seen:b"]


async def test_event_processor_without_emitter_does_nothing() -> None:
    await EventProcessor(_map((Seen, SeenHandler))).emit_events([Seen(name="a")])
    assert LOG == []


async def test_event_mediator_sends_an_event_and_its_follow_ups_through_middleware() -> None:
    seen: list[str] = []

    class Mark:
        async def __call__(self, event: Any, next: Any) -> Any:
            seen.append(type(event).__name__)
            return await next(event)

    mediator = events_bootstrap.bootstrap(
        middlewares=[Mark()],
        events_mapper=lambda m: (m.bind(Seen, SeenHandler), m.bind(Followed, FollowedHandler)),
    )
    assert isinstance(mediator, cqrs.EventMediator)
    await mediator.send(Seen(name="a"))
    assert LOG == ["seen:a", "followed:a"] and seen == ["Seen"]


async def test_a_parametrised_notification_event_binds_its_class() -> None:
    got: list[Any] = []

    class Payload(cqrs.Response):
        value: int

    class OnPayload(cqrs.EventHandler[cqrs.ECSTEvent[Payload]]):
        async def handle(self, event: cqrs.ECSTEvent[Payload]) -> None:
            got.append(event.payload)

    mediator = cqrs.EventMediator(_map((cqrs.ECSTEvent[Payload], OnPayload)))
    await mediator.send(cqrs.ECSTEvent[Payload](event_name="p", payload=Payload(value=1)))
    assert got == [Payload(value=1)]
