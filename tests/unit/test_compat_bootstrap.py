"""python-cqrs bootstrap keywords, setup_* functions and 5.x paths (issue 17)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator

import di

import cqrs
from cqrs.message_brokers import devnull
from cqrs.requests import bootstrap


class Join(cqrs.Request):
    user: str


class Joined(cqrs.DomainEvent, frozen=True):
    user: str


HANDLED: list[str] = []


class JoinHandler(cqrs.RequestHandler[Join, None]):
    async def handle(self, request: Join) -> None:
        self.add_event(Joined(user=request.user))
        self.add_event(
            cqrs.NotificationEvent(event_name="joined", topic="users", payload={"user": request.user})
        )


class JoinStream(cqrs.StreamingRequestHandler[Join, cqrs.Response]):
    async def handle(self, request: Join) -> AsyncIterator[cqrs.Response]:
        self.add_event(Joined(user=request.user))
        yield cqrs.Response()


class JoinedHandler(cqrs.EventHandler[Joined]):
    async def handle(self, event: Joined) -> None:
        HANDLED.append(event.user)


def _commands(m: cqrs.RequestMap) -> None:
    m.bind(Join, JoinHandler)


def _events(m: cqrs.EventMap) -> None:
    m.bind(Joined, JoinedHandler)


async def test_bootstrap_takes_none_for_middlewares_and_on_startup_and_a_broker() -> None:
    HANDLED.clear()
    before = len(devnull.MESSAGE_BUS)
    mediator = bootstrap.bootstrap(
        di_container=di.Container(),
        commands_mapper=_commands,
        domain_events_mapper=_events,
        middlewares=None,
        on_startup=None,
        message_broker=devnull.DevnullMessageBroker(),
    )
    await mediator.send(Join(user="ann"))
    assert HANDLED == ["ann"]
    assert [m.topic for m in devnull.MESSAGE_BUS[before:]] == ["users"]


async def test_bootstrap_streaming_takes_the_same_keywords() -> None:
    HANDLED.clear()
    mediator = bootstrap.bootstrap_streaming(
        di_container=di.Container(),
        commands_mapper=lambda m: m.bind(Join, JoinStream),
        domain_events_mapper=_events,
        middlewares=None,
        on_startup=None,
        message_broker=devnull.DevnullMessageBroker(),
    )
    assert len([item async for item in mediator.stream(Join(user="bob"))]) == 1
    assert HANDLED == ["bob"]


async def test_setup_functions_wire_a_mediator_around_one_emitter() -> None:
    HANDLED.clear()
    container = cqrs.Container()
    emitter = bootstrap.setup_event_emitter(container, _events, devnull.DevnullMessageBroker())
    mediator = bootstrap.setup_mediator(emitter, container, None, commands_mapper=_commands)
    assert mediator.event_emitter is emitter and mediator.event_map is emitter.event_map
    await mediator.send(Join(user="cy"))
    assert HANDLED == ["cy"]

    streaming = bootstrap.setup_streaming_mediator(
        bootstrap.setup_event_emitter(container),
        container,
        commands_mapper=lambda m: m.bind(Join, JoinStream),
        domain_events_mapper=_events,
        max_concurrent_event_handlers=3,
    )
    assert streaming.settings.max_concurrent_event_handlers == 3
    assert len([i async for i in streaming.stream(Join(user="dee"))]) == 1
    assert HANDLED == ["cy", "dee"]


def test_5x_paths_are_the_same_functions_and_cqrs_bootstrap_stays_callable() -> None:
    requests = importlib.import_module("cqrs.bootstrap.requests")
    events = importlib.import_module("cqrs.bootstrap.events")
    assert requests.bootstrap is bootstrap.bootstrap
    assert requests.setup_streaming_mediator is bootstrap.setup_streaming_mediator
    assert events.bootstrap is importlib.import_module("cqrs.events.bootstrap").bootstrap
    assert isinstance(cqrs.bootstrap(commands_mapper=_commands), cqrs.RequestMediator)
