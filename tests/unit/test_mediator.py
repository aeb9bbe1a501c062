"""RequestMediator.send and bootstrap()."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import cqrs
from cqrs.requests import bootstrap

from ._support import Log, Number, Numbers, Produced, RecordProduced


class Double(cqrs.RequestHandler[Numbers, Number]):
    async def handle(self, request: Numbers) -> Number:
        Log.current.add("handle")
        self.add_event(Produced(value=request.count))
        return Number(value=request.count * 2)


class Follow(cqrs.DomainEvent):
    pass


class FollowUp(cqrs.EventHandler[Produced]):
    async def handle(self, event: Produced) -> None:
        self.add_event(Follow())


class OnFollow(cqrs.EventHandler[Follow]):
    async def handle(self, event: Follow) -> None:
        Log.current.add("follow")


async def test_send_dispatches_recorded_events_and_follow_ups_before_returning() -> None:
    log = Log()
    mediator = bootstrap.bootstrap(
        commands_mapper=lambda m: m.bind(Numbers, Double),
        domain_events_mapper=lambda m: (
            m.bind(Produced, RecordProduced),
            m.bind(Produced, FollowUp),
            m.bind(Follow, OnFollow),
        ),
    )
    assert await mediator.send(Numbers(count=2)) == Number(value=4)
    assert log.entries == ["handle", ("event", 2), "follow"]
    assert mediator.request_map.get(Numbers) is Double


async def test_send_without_handler_names_the_request() -> None:
    class Nope(cqrs.Request):
        pass

    mediator = cqrs.bootstrap(commands_mapper=lambda m: m.bind(Numbers, Double))
    with pytest.raises(cqrs.HandlerNotFoundError, match=r"Nope.*Numbers -> Double"):
        await mediator.send(Nope())


class DuckGenerator:
    events: list[cqrs.Event] = []

    def clear_events(self) -> None: ...

    async def handle(self, request: Numbers) -> AsyncIterator[Number]:
        yield Number(value=1)


def test_bootstrap_rejects_a_generator_handler_for_unary() -> None:
    with pytest.raises(cqrs.InvalidHandlerError, match=r"DuckGenerator.*bootstrap_streaming"):
        cqrs.bootstrap(commands_mapper=lambda m: m.bind(Numbers, DuckGenerator))


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="event_timing"):
        cqrs.bootstrap_streaming(event_timing="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_concurrent_event_handlers"):
        cqrs.bootstrap_streaming(max_concurrent_event_handlers=0)
    with pytest.raises(ValueError, match="on_close"):
        cqrs.bootstrap_streaming(on_close="leak")  # type: ignore[arg-type]


def test_on_startup_hooks_run_once() -> None:
    calls: list[int] = []
    cqrs.bootstrap(on_startup=[lambda: calls.append(1)])
    assert calls == [1]


def test_defaults() -> None:
    settings = cqrs.bootstrap_streaming().settings
    assert settings == cqrs.MediatorSettings()
    assert settings.event_timing == "before_send" and settings.on_close == "complete"
    assert settings.event_failure_policy == "isolate" and settings.max_event_depth == 8


def test_cqrs_imports_nothing_from_grpc() -> None:
    import subprocess
    import sys

    code = "import sys, cqrs, cqrs.requests.bootstrap; print(any(m.split('.')[0] == 'grpc' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class SlowAudit(cqrs.EventHandler[Produced]):
    started: asyncio.Event
    release: asyncio.Event

    async def handle(self, event: Produced) -> None:
        SlowAudit.started.set()
        await SlowAudit.release.wait()
        Log.current.add(("audited", event.value))


async def test_cancelling_send_while_its_events_run_still_handles_them_then_cancels() -> None:
    log = Log()
    SlowAudit.started, SlowAudit.release = asyncio.Event(), asyncio.Event()
    mediator = bootstrap.bootstrap(
        commands_mapper=lambda m: m.bind(Numbers, Double),
        domain_events_mapper=lambda m: m.bind(Produced, SlowAudit),
    )
    sending = asyncio.create_task(mediator.send(Numbers(count=3)))
    await SlowAudit.started.wait()
    sending.cancel()
    await asyncio.sleep(0)
    assert not sending.done()  # still waiting for the event it recorded
    SlowAudit.release.set()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert log.entries == ["handle", ("audited", 3)]
