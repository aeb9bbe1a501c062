"""No recorded event is lost, whichever way a handler keeps its events.

python-cqrs's README and examples write ``events`` as ``return self._events`` (the live list); the seed
returns a copy. The mediator must dispatch every event either way, in ``send``, ``stream`` and
``stream_into``, between items and after the last yield, and for follow-ups of event handlers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import cqrs
from cqrs.events.event import Event
from cqrs.recorder import take_events

from ._support import Log, Number, Numbers, Produced


class LiveList:
    """python-cqrs's pattern: ``events`` is the handler's own list, which ``clear_events`` empties."""

    def __init__(self) -> None:
        self._events: list[Event] = []

    @property
    def events(self) -> list[Event]:
        return self._events

    def clear_events(self) -> None:
        self._events.clear()


class Copied(LiveList):
    """The seed's pattern: ``events`` returns a copy."""

    @property
    def events(self) -> list[Event]:
        return self._events.copy()


def stream_handler(base: type[LiveList]) -> type[Any]:
    class Handler(base, cqrs.StreamingRequestHandler[Numbers, Number]):  # type: ignore[valid-type, misc]
        async def handle(self, request: Numbers) -> AsyncIterator[Number]:
            for i in range(request.count):
                self._events.append(Produced(value=i))
                yield Number(value=i)
            for j in range(request.tail_events):
                self._events.append(Produced(value=100 + j))

    return Handler


def unary_handler(base: type[LiveList]) -> type[Any]:
    class Handler(base, cqrs.RequestHandler[Numbers, Number]):  # type: ignore[valid-type, misc]
        async def handle(self, request: Numbers) -> Number:
            for i in range(request.count):
                self._events.append(Produced(value=i))
            return Number(value=request.count)

    return Handler


class Recorded(cqrs.EventHandler[Produced]):
    async def handle(self, event: Produced) -> None:
        Log.current.add(event.value)


class FollowedUp(cqrs.DomainEvent):
    value: int


class RecordsFollowUpsInALiveList(LiveList, cqrs.EventHandler[Produced]):
    async def handle(self, event: Produced) -> None:
        self._events.append(FollowedUp(value=event.value))


class RecordFollowUp(cqrs.EventHandler[FollowedUp]):
    async def handle(self, event: FollowedUp) -> None:
        Log.current.add(("follow-up", event.value))


BASES = [pytest.param(LiveList, id="live-list"), pytest.param(Copied, id="copy")]
TIMINGS = ["before_send", "with_send"]


def bind_events(m: cqrs.EventMap) -> None:
    m.bind(Produced, Recorded)


@pytest.mark.parametrize("base", BASES)
async def test_send_dispatches_every_event(base: type[LiveList]) -> None:
    log = Log()
    mediator = cqrs.bootstrap(
        commands_mapper=lambda m: m.bind(Numbers, unary_handler(base)), domain_events_mapper=bind_events
    )
    assert await mediator.send(Numbers(count=3)) == Number(value=3)
    assert log.entries == [0, 1, 2]


@pytest.mark.parametrize("timing", TIMINGS)
@pytest.mark.parametrize("base", BASES)
async def test_stream_dispatches_every_event_including_after_the_last_yield(
    base: type[LiveList], timing: str
) -> None:
    log = Log()
    mediator = cqrs.bootstrap_streaming(
        commands_mapper=lambda m: m.bind(Numbers, stream_handler(base)),
        domain_events_mapper=bind_events,
        event_timing=timing,  # type: ignore[arg-type]
    )
    items = [n.value async for n in mediator.stream(Numbers(count=3, tail_events=2))]
    assert items == [0, 1, 2]
    assert log.entries == [0, 1, 2, 100, 101]


@pytest.mark.parametrize("timing", TIMINGS)
@pytest.mark.parametrize("base", BASES)
async def test_stream_into_dispatches_every_event_including_after_the_last_yield(
    base: type[LiveList], timing: str
) -> None:
    log = Log()
    mediator = cqrs.bootstrap_streaming(
        commands_mapper=lambda m: m.bind(Numbers, stream_handler(base)),
        domain_events_mapper=bind_events,
        event_timing=timing,  # type: ignore[arg-type]
    )
    taken: list[int] = []

    async def sink(item: Number) -> None:
        await asyncio.sleep(0)
        taken.append(item.value)

    await mediator.stream_into(Numbers(count=3, tail_events=2), sink)
    assert taken == [0, 1, 2]
    assert log.entries == [0, 1, 2, 100, 101]


@pytest.mark.parametrize("concurrent", [False, True])
async def test_follow_ups_recorded_in_a_live_list_are_dispatched(concurrent: bool) -> None:
    log = Log()

    def events(m: cqrs.EventMap) -> None:
        m.bind(Produced, RecordsFollowUpsInALiveList)
        m.bind(FollowedUp, RecordFollowUp)

    mediator = cqrs.bootstrap_streaming(
        commands_mapper=lambda m: m.bind(Numbers, stream_handler(LiveList)),
        domain_events_mapper=events,
        concurrent_event_handle_enable=concurrent,
    )
    assert [n.value async for n in mediator.stream(Numbers(count=2))] == [0, 1]
    assert log.entries == [("follow-up", 0), ("follow-up", 1)]


def test_take_events_snapshots_before_clearing() -> None:
    handler = LiveList()
    handler._events.extend([Produced(value=1), Produced(value=2)])
    assert list(take_events(handler)) == [Produced(value=1), Produced(value=2)]
    assert handler.events == [] and take_events(handler) == ()
