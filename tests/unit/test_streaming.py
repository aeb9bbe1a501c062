"""StreamingRequestMediator: events between yields, tail events, closing, call-time checks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

import cqrs

from ._support import (
    Log,
    Number,
    Numbers,
    NumbersHandler,
    Produced,
    RecordProduced,
    spin,
    streaming,
    wait_for,
)


class Gate:
    opened: asyncio.Event
    started: asyncio.Event
    finished: list[int]
    cancelled: list[int]


GATE = Gate()


def new_gate() -> Gate:
    GATE.opened = asyncio.Event()
    GATE.started = asyncio.Event()
    GATE.finished = []
    GATE.cancelled = []
    return GATE


class GatedHandler(cqrs.EventHandler[Produced]):
    async def handle(self, event: Produced) -> None:
        GATE.started.set()
        try:
            await GATE.opened.wait()
        except asyncio.CancelledError:
            GATE.cancelled.append(event.value)
            raise
        GATE.finished.append(event.value)
        Log.current.add(("event", event.value))


@pytest.mark.parametrize("concurrent", [False, True])
async def test_with_send_releases_the_item_first_and_resumes_the_handler_after_its_events(
    concurrent: bool,
) -> None:
    log = Log()
    gate = new_gate()
    mediator = streaming(
        events=(GatedHandler,), concurrent_event_handle_enable=concurrent, event_timing="with_send"
    )
    async with contextlib.aclosing(mediator.stream(Numbers(count=2))) as stream:
        first = await anext(stream)
        assert first == Number(value=0)
        assert gate.finished == []  # released before its event was handled
        nxt = asyncio.ensure_future(anext(stream))
        await wait_for(gate.started.is_set)
        await spin()
        assert not nxt.done()
        assert ("produce", 1) not in log.entries  # the handler is not resumed while item 0's events run
        gate.opened.set()
        assert await nxt == Number(value=1)
        assert log.entries.index(("event", 0)) < log.entries.index(("produce", 1))
        assert [x async for x in stream] == []
    assert gate.finished == [0, 1]


@pytest.mark.parametrize("concurrent", [False, True])
async def test_before_send_releases_the_item_only_after_its_events(concurrent: bool) -> None:
    Log()
    gate = new_gate()
    mediator = streaming(
        events=(GatedHandler,), event_timing="before_send", concurrent_event_handle_enable=concurrent
    )
    async with contextlib.aclosing(mediator.stream(Numbers(count=1))) as stream:
        first = asyncio.ensure_future(anext(stream))
        await wait_for(gate.started.is_set)
        await spin()
        assert not first.done()
        gate.opened.set()
        assert await first == Number(value=0)
        assert gate.finished == [0]


async def test_item_k_events_always_precede_item_k_plus_1() -> None:
    for settings in (
        {},
        {"event_timing": "before_send"},
        {"concurrent_event_handle_enable": True},
        {"concurrent_event_handle_enable": True, "event_timing": "before_send"},
    ):
        log = Log()
        mediator = streaming(**settings)
        values = [n.value async for n in mediator.stream(Numbers(count=4))]
        assert values == [0, 1, 2, 3]
        trace = [e for e in log.entries if e[0] != "handler-finally"]
        for i in range(3):
            assert trace.index(("event", i)) < trace.index(("produce", i + 1)), settings


@pytest.mark.parametrize("timing", ["with_send", "before_send"])
async def test_events_recorded_after_the_last_yield_are_dispatched(timing: str) -> None:
    log = Log()
    mediator = streaming(event_timing=timing)
    values = [n.value async for n in mediator.stream(Numbers(count=1, tail_events=2))]
    assert values == [0]
    assert [e for e in log.entries if e[0] == "event"] == [("event", 0), ("event", 100), ("event", 101)]


class NeverYields(cqrs.StreamingRequestHandler[Numbers, Number]):
    async def handle(self, request: Numbers) -> AsyncIterator[Number]:
        self.add_event(Produced(value=7))
        return
        yield  # pragma: no cover - makes this an async generator


async def test_events_of_a_handler_that_never_yields_are_dispatched() -> None:
    log = Log()
    mediator = streaming(handler=NeverYields)
    assert [n async for n in mediator.stream(Numbers())] == []
    assert log.entries == [("event", 7)]


async def test_a_new_handler_instance_per_stream() -> None:
    seen: list[object] = []  # the instances, not id()s: a freed instance's id can be reused

    class Remember(cqrs.StreamingRequestHandler[Numbers, Number]):
        async def handle(self, request: Numbers) -> AsyncIterator[Number]:
            seen.append(self)
            yield Number(value=0)

    mediator = streaming(handler=Remember)
    kept = [mediator.stream(Numbers()), mediator.stream(Numbers())]
    for stream in kept:
        assert [n async for n in stream] == [Number(value=0)]
    assert len(seen) == 2 and seen[0] is not seen[1]


async def test_a_request_without_handler_fails_at_call_time_naming_what_is_bound() -> None:
    class Other(cqrs.Request):
        pass

    mediator = streaming()
    with pytest.raises(cqrs.HandlerNotFoundError, match=r"Other.*Numbers -> NumbersHandler"):
        mediator.stream(Other())  # not iterated: the error comes from the call itself


class DuckNotGenerator:
    """Not a StreamingRequestHandler subclass, so bind() cannot know it is meant for streaming."""

    events: list[Any] = []

    def clear_events(self) -> None: ...

    async def handle(self, request: Numbers) -> Number:
        return Number(value=0)


async def test_a_non_generator_handler_is_rejected_when_the_streaming_mediator_is_built() -> None:
    with pytest.raises(cqrs.InvalidHandlerError, match=r"DuckNotGenerator.*not a streaming handler"):
        cqrs.bootstrap_streaming(commands_mapper=lambda m: m.bind(Numbers, DuckNotGenerator))
    with pytest.raises(cqrs.InvalidHandlerError, match=r"NumbersHandler.*is a streaming handler"):
        cqrs.bootstrap(commands_mapper=lambda m: m.bind(Numbers, NumbersHandler))


async def test_a_handler_bound_after_the_mediator_is_built_is_checked_too() -> None:
    Log()
    mediator = cqrs.bootstrap_streaming()
    with pytest.raises(cqrs.InvalidHandlerError, match=r"DuckNotGenerator.*not a streaming handler"):
        mediator.request_map.bind(Numbers, DuckNotGenerator)
    assert Numbers not in mediator.request_map
    mediator.request_map.bind(Numbers, NumbersHandler)
    assert [n.value async for n in mediator.stream(Numbers(count=2))] == [0, 1]


# --- closing and cancelling ------------------------------------------------------------------------------


async def test_breaking_out_under_aclosing_runs_the_handler_finally_in_the_consumer_task() -> None:
    log = Log()
    mediator = streaming()
    async with contextlib.aclosing(mediator.stream(Numbers(count=5))) as stream:
        async for number in stream:
            if number.value == 1:
                break
    assert ("handler-finally", asyncio.current_task()) in log.entries
    assert ("produce", 2) not in log.entries


class SlowNumbers(cqrs.StreamingRequestHandler[Numbers, Number]):
    started: asyncio.Event

    async def handle(self, request: Numbers) -> AsyncIterator[Number]:
        try:
            yield Number(value=0)
            SlowNumbers.started.set()
            await asyncio.Event().wait()  # never set: only cancellation gets us out
            yield Number(value=1)  # pragma: no cover
        finally:
            await asyncio.sleep(0)  # clean-up that awaits
            Log.current.add(("handler-finally", asyncio.current_task()))


@pytest.mark.parametrize("middleware", [False, True])
async def test_cancelling_the_consumer_while_the_handler_awaits_closes_it_in_that_task(
    middleware: bool,
) -> None:
    log = Log()
    SlowNumbers.started = asyncio.Event()
    mws = [PassThrough()] if middleware else []
    mediator = streaming(handler=SlowNumbers, middlewares=mws)

    async def consume() -> None:
        async with contextlib.aclosing(mediator.stream(Numbers())) as stream:
            async for _ in stream:
                pass

    task = asyncio.create_task(consume())
    await wait_for(SlowNumbers.started.is_set)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log.entries == [("handler-finally", task)]


class PassThrough:
    async def __call__(self, request: cqrs.Request, next: cqrs.Next) -> Any:
        return await next(request)


@pytest.mark.parametrize("on_close", ["complete", "cancel"])
async def test_closing_with_a_pending_event_task_settles_it_before_aclose_returns(on_close: str) -> None:
    Log()
    gate = new_gate()
    mediator = streaming(
        events=(GatedHandler,),
        concurrent_event_handle_enable=True,
        on_close=on_close,
        event_timing="with_send",
    )
    stream = mediator.stream(Numbers(count=3))
    assert await anext(stream) == Number(value=0)
    await wait_for(gate.started.is_set)
    closing = asyncio.ensure_future(stream.aclose())
    await spin()
    if on_close == "complete":
        assert not closing.done()  # waits for the recorded event
        gate.opened.set()
        await closing
        assert gate.finished == [0]
    else:
        await closing
        assert gate.cancelled == [0] and gate.finished == []
    assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing outlives aclose()


@pytest.mark.parametrize("on_close", ["complete", "cancel"])
async def test_closing_at_a_yield_with_inline_events_pending(on_close: str) -> None:
    log = Log()
    # with_send, sequential: item 0's events wait for the next ask
    mediator = streaming(on_close=on_close, event_timing="with_send")
    stream = mediator.stream(Numbers(count=3))
    assert await anext(stream) == Number(value=0)
    assert ("event", 0) not in log.entries
    await stream.aclose()
    events = [e for e in log.entries if e[0] == "event"]
    assert events == ([("event", 0)] if on_close == "complete" else [])
    assert log.entries[0] == ("produce", 0)


async def test_cancelling_the_consumer_while_awaiting_a_dispatch_task_completes_it_under_complete() -> None:
    Log()
    gate = new_gate()
    mediator = streaming(events=(GatedHandler,), concurrent_event_handle_enable=True)

    async def consume() -> None:
        async with contextlib.aclosing(mediator.stream(Numbers(count=3))) as stream:
            async for _ in stream:
                pass

    task = asyncio.create_task(consume())
    await wait_for(gate.started.is_set)
    await spin()
    task.cancel()
    await spin()
    assert not task.done()  # the recorded event is being completed (shielded)
    gate.opened.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate.finished == [0] and gate.cancelled == []


class SecondHandler(cqrs.EventHandler[Produced]):
    async def handle(self, event: Produced) -> None:
        Log.current.add(("second", event.value))


@pytest.mark.parametrize("timing", ["with_send", "before_send"])
@pytest.mark.parametrize("concurrent", [False, True])
@pytest.mark.parametrize("on_close", ["complete", "cancel"])
async def test_cancelling_the_consumer_while_item_events_run_inline(
    timing: str, concurrent: bool, on_close: str
) -> None:
    # the consumer's own task runs these dispatches (no task is pending at the cancel, unlike the
    # concurrent with_send case above), yet "complete" must still finish every recorded event
    log = Log()
    gate = new_gate()
    mediator = streaming(
        events=(GatedHandler, SecondHandler),
        event_timing=timing,
        concurrent_event_handle_enable=concurrent,
        on_close=on_close,
    )

    async def consume() -> None:
        async with contextlib.aclosing(mediator.stream(Numbers(count=3))) as stream:
            async for _ in stream:
                pass

    task = asyncio.create_task(consume())
    await wait_for(gate.started.is_set)
    await spin()
    task.cancel()
    await spin()
    if on_close == "complete":
        assert not task.done()  # item 0's events are being finished
        gate.opened.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    if on_close == "complete":
        assert gate.finished == [0] and gate.cancelled == []
        assert ("second", 0) in log.entries
    else:
        assert gate.cancelled == [0] and gate.finished == []
    assert ("produce", 1) not in log.entries
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_athrow_closes_the_handler_and_propagates() -> None:
    log = Log()
    mediator = streaming(handler=NumbersHandler)
    stream = mediator.stream(Numbers(count=3))
    await anext(stream)
    with pytest.raises(KeyError):
        await stream.athrow(KeyError("x"))
    assert ("handler-finally", asyncio.current_task()) in log.entries


async def test_registering_the_seed_like_streaming_handler_works_with_unary_default() -> None:
    # both mappers bind into the one RequestMap of the mediator
    class Q(cqrs.Request):
        pass

    class QH(cqrs.StreamingRequestHandler[Q, Number]):
        async def handle(self, request: Q) -> AsyncIterator[Number]:
            yield Number(value=42)

    mediator = cqrs.bootstrap_streaming(
        commands_mapper=lambda m: m.bind(Numbers, NumbersHandler),
        queries_mapper=lambda m: m.bind(Q, QH),
        domain_events_mapper=lambda m: m.bind(Produced, RecordProduced),
    )
    Log()
    assert set(mediator.request_map) == {Numbers, Q}
    assert [n.value async for n in mediator.stream(Q())] == [42]
