"""StreamingRequestMediator.stream_into: the push form of stream() keeps every promise of stream()."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import cqrs
from cqrs import HandlerNotFoundError, SinkError

from ._support import Log, Number, Numbers, spin, streaming, wait_for
from .test_streaming import GatedHandler, NeverYields, PassThrough, SecondHandler, SlowNumbers, new_gate

SETTINGS = [
    {"event_timing": "with_send"},
    {"event_timing": "with_send", "on_close": "cancel"},
    {},  # the default: before_send
    {"on_close": "cancel"},
    {"concurrent_event_handle_enable": True},
    {"event_timing": "with_send", "concurrent_event_handle_enable": True},
    {"middlewares": [PassThrough()]},
]


def before_send(settings: dict[str, Any]) -> bool:
    return settings.get("event_timing", "before_send") == "before_send"


def recording_sink() -> tuple[list[int], Callable[[Number], Awaitable[None]]]:
    taken: list[int] = []

    async def sink(item: Number) -> None:
        await asyncio.sleep(0)
        Log.current.add(("sink", item.value))
        taken.append(item.value)

    return taken, sink


@pytest.mark.parametrize("settings", SETTINGS)
async def test_items_reach_the_sink_in_order_with_their_events_before_the_next_item(
    settings: dict[str, Any],
) -> None:
    log = Log()
    taken, sink = recording_sink()
    await streaming(**settings).stream_into(Numbers(count=4, tail_events=1), sink)
    assert taken == [0, 1, 2, 3]
    trace = [e for e in log.entries if e[0] != "handler-finally"]
    for i in range(3):
        assert trace.index(("event", i)) < trace.index(("produce", i + 1)), settings
        if before_send(settings):
            assert trace.index(("event", i)) < trace.index(("sink", i))
        elif not settings.get("concurrent_event_handle_enable"):
            assert trace.index(("sink", i)) < trace.index(("event", i))
    assert trace[-1] == ("event", 100)  # recorded after the last yield


async def test_the_handler_resumes_only_after_the_events_of_the_item_the_sink_took() -> None:
    log = Log()
    gate = new_gate()
    taken, sink = recording_sink()
    mediator = streaming(events=(GatedHandler,), event_timing="with_send")
    running = asyncio.ensure_future(mediator.stream_into(Numbers(count=2), sink))
    await wait_for(gate.started.is_set)
    await spin()
    assert taken == [0]  # released before its event was handled
    assert ("produce", 1) not in log.entries
    gate.opened.set()
    await running
    assert taken == [0, 1] and gate.finished == [0, 1]


async def test_events_of_a_handler_that_never_yields_are_dispatched() -> None:
    log = Log()
    taken, sink = recording_sink()
    await streaming(handler=NeverYields).stream_into(Numbers(), sink)
    assert taken == [] and log.entries == [("event", 7)]


class SinkFailed(Exception):
    pass


def settled_events(settings: dict[str, Any]) -> list[tuple[str, int]]:
    """The events of item 0 that are handled when the consumer stops at item 0."""
    if before_send(settings):
        return [("event", 0)]  # handled before the item was released
    return [] if settings.get("on_close") == "cancel" else [("event", 0)]


@pytest.mark.parametrize("settings", SETTINGS)
async def test_a_sink_that_raises_closes_the_handler_settles_the_item_and_says_it_was_the_sink(
    settings: dict[str, Any],
) -> None:
    log = Log()

    async def sink(item: Number) -> None:
        await asyncio.sleep(0)
        raise SinkFailed

    with pytest.raises(SinkError) as failed:
        await streaming(**settings).stream_into(Numbers(count=3), sink)
    assert isinstance(failed.value.__cause__, SinkFailed) and failed.value.item == Number(value=0)
    assert ("handler-finally", asyncio.current_task()) in log.entries
    assert ("produce", 1) not in log.entries
    assert [e for e in log.entries if e[0] == "event"] == settled_events(settings)
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.parametrize("settings", SETTINGS)
async def test_cancelling_while_the_sink_waits_closes_the_handler_in_that_task(
    settings: dict[str, Any],
) -> None:
    log = Log()
    waiting = asyncio.Event()

    async def sink(item: Number) -> None:
        waiting.set()
        await asyncio.Event().wait()  # a write that never completes: only cancellation gets us out

    task = asyncio.create_task(streaming(**settings).stream_into(Numbers(count=3), sink))
    await wait_for(waiting.is_set)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ("handler-finally", task) in log.entries
    assert [e for e in log.entries if e[0] == "event"] == settled_events(settings)
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancelling_while_the_handler_awaits_closes_it_in_that_task() -> None:
    log = Log()
    SlowNumbers.started = asyncio.Event()
    taken, sink = recording_sink()
    task = asyncio.create_task(streaming(handler=SlowNumbers).stream_into(Numbers(), sink))
    await wait_for(SlowNumbers.started.is_set)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert taken == [0]
    assert log.entries[-1] == ("handler-finally", task)


async def test_cancelling_while_item_events_run_finishes_them_under_complete() -> None:
    log = Log()
    gate = new_gate()
    _, sink = recording_sink()
    mediator = streaming(events=(GatedHandler, SecondHandler))
    task = asyncio.create_task(mediator.stream_into(Numbers(count=3), sink))
    await wait_for(gate.started.is_set)
    await spin()
    task.cancel()
    await spin()
    assert not task.done()  # item 0's events are being finished
    gate.opened.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate.finished == [0] and ("second", 0) in log.entries
    assert ("produce", 1) not in log.entries


async def test_middleware_wraps_a_pushed_stream_too() -> None:
    Log()
    seen: list[Any] = []

    class Counting:
        async def __call__(self, request: cqrs.Request, next: cqrs.Next) -> Any:
            seen.append(request)
            result = await next(request)
            seen.append(result)
            return result

    taken, sink = recording_sink()
    await streaming(middlewares=[Counting()]).stream_into(Numbers(count=2), sink)
    assert taken == [0, 1]
    assert seen == [Numbers(count=2), 2]


async def test_a_request_without_handler_fails_before_anything_runs() -> None:
    class Unbound(cqrs.Request):
        pass

    taken, sink = recording_sink()
    with pytest.raises(HandlerNotFoundError, match="Unbound"):
        await streaming().stream_into(Unbound(), sink)
    assert taken == []


class HandlerFailed(Exception):
    pass


class FailsAfterOne(cqrs.StreamingRequestHandler[Numbers, Number]):
    async def handle(self, request: Numbers) -> AsyncIterator[Number]:
        yield Number(value=0)
        raise HandlerFailed


@pytest.mark.parametrize("settings", SETTINGS)
async def test_the_handlers_own_exception_comes_out_as_it_is(settings: dict[str, Any]) -> None:
    Log()  # a fresh Log.current for the handlers
    taken, sink = recording_sink()
    with pytest.raises(HandlerFailed):
        await streaming(handler=FailsAfterOne, **settings).stream_into(Numbers(), sink)
    assert taken == [0]


@pytest.mark.parametrize("settings", SETTINGS)
async def test_a_plain_function_sink_returning_its_write_is_awaited_and_its_failure_is_the_sinks(
    settings: dict[str, Any],
) -> None:
    """The gRPC server's shape: the sink starts a write and hands it back to be awaited."""
    log = Log()
    written: list[int] = []

    async def write(value: int) -> None:
        await asyncio.sleep(0)
        if value == 2:
            raise SinkFailed
        written.append(value)

    def sink(item: Number) -> Awaitable[None]:
        return write(item.value)

    with pytest.raises(SinkError) as failed:
        await streaming(**settings).stream_into(Numbers(count=4), sink)
    assert written == [0, 1] and isinstance(failed.value.__cause__, SinkFailed)
    assert failed.value.sink is sink and failed.value.item == Number(value=2)
    # items 0 and 1 had their events once each; item 2, which the sink refused, is settled like item 0
    # of a consumer that stops at once
    stopped_at_two = [("event", 2) for _ in settled_events(settings)]
    assert [e for e in log.entries if e[0] == "event"] == [("event", 0), ("event", 1), *stopped_at_two]
    assert asyncio.all_tasks() == {asyncio.current_task()}
