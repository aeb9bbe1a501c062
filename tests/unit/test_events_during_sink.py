"""stream_into(..., events_during_sink=True), a with_send feature: events run while the write is in flight.

The sink's first step hands the item over (grpc's write starts the send in its core); what follows only
waits for that to finish. Every other promise of stream_into holds: item k's events finish before item
k+1 is produced, a failing sink is the sink's error, cancellation closes the handler in its task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import cqrs
from cqrs import SinkError
from cqrs.streaming import _first_step

from . import _support
from ._support import Log, Number, Numbers, Produced, RecordProduced, spin, wait_for
from .test_streaming import GatedHandler, PassThrough, new_gate


def streaming(**settings: Any) -> cqrs.StreamingRequestMediator:
    """The events-during-the-write overlap is a ``with_send`` feature: every mediator here opts in."""
    settings.setdefault("event_timing", "with_send")
    return _support.streaming(**settings)


class SinkFailed(Exception):
    pass


class EventFailed(Exception):
    pass


class FailingEvent(cqrs.EventHandler[Produced]):
    async def handle(self, event: Produced) -> None:
        raise EventFailed


def two_step_sink() -> Callable[[Number], Awaitable[None]]:
    """A write that starts, suspends once, then finishes: like grpc's, with a visible start and end."""

    async def sink(item: Number) -> None:
        Log.current.add(("sink-start", item.value))
        await asyncio.sleep(0)
        Log.current.add(("sink-done", item.value))

    return sink


class HeldWrite:
    """A sink whose write waits on a future the test holds, recording how the write ended."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[None]] = []
        self.ended: list[str] = []

    async def __call__(self, item: Number) -> None:
        future = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        try:
            await future
        except asyncio.CancelledError:
            self.ended.append("cancelled")
            raise
        except GeneratorExit:
            self.ended.append("closed")
            raise
        self.ended.append("done")

    def release(self) -> None:
        """Let every write still waiting finish (a failed test must not leave a stream behind)."""
        for future in self.futures:
            if not future.done():
                future.set_result(None)


def gated_stream(write: Callable[[Number], Awaitable[None]], count: int) -> asyncio.Task[None]:
    """A stream whose items' events wait at the gate (GatedHandler), written through ``write``."""
    mediator = streaming(events=(GatedHandler,))
    return asyncio.create_task(mediator.stream_into(Numbers(count=count), write, events_during_sink=True))


def events_of(log: Log) -> list[Any]:
    return [e for e in log.entries if e[0] == "event"]


async def test_an_items_events_run_after_the_sink_started_it_and_before_it_finished() -> None:
    log = Log()
    await streaming().stream_into(Numbers(count=3, tail_events=1), two_step_sink(), events_during_sink=True)
    trace = [e for e in log.entries if e[0] != "handler-finally"]
    for i in range(3):
        assert trace.index(("sink-start", i)) < trace.index(("event", i)) < trace.index(("sink-done", i))
    for i in range(2):
        assert trace.index(("sink-done", i)) < trace.index(("produce", i + 1))
    assert trace[-1] == ("event", 100)  # recorded after the last yield: no write to overlap


@pytest.mark.parametrize(
    "settings",
    [{"on_close": "cancel"}, {"middlewares": [PassThrough()]}],
    ids=["on_close=cancel", "middleware"],
)
async def test_elsewhere_an_items_events_still_wait_for_the_sink(settings: dict[str, Any]) -> None:
    # under "cancel" a sink that fails must cancel the events of its item, so they cannot start early
    log = Log()
    await streaming(**settings).stream_into(Numbers(count=3), two_step_sink(), events_during_sink=True)
    for i in range(3):
        assert log.entries.index(("sink-done", i)) < log.entries.index(("event", i))


async def test_a_sink_that_finishes_in_its_first_step_has_its_item_events_after_it() -> None:
    log = Log()

    async def sink(item: Number) -> None:
        Log.current.add(("sink-done", item.value))

    await streaming().stream_into(Numbers(count=2), sink, events_during_sink=True)
    assert [e for e in log.entries if e[0] != "handler-finally"] == [
        ("produce", 0),
        ("sink-done", 0),
        ("event", 0),
        ("produce", 1),
        ("sink-done", 1),
        ("event", 1),
    ]


async def test_the_handler_resumes_only_after_the_items_events_and_its_write() -> None:
    log = Log()
    gate = new_gate()
    write = HeldWrite()
    running = gated_stream(write, count=2)
    try:
        await wait_for(gate.started.is_set)  # item 0's events run while its write waits
        assert write.ended == []
        gate.opened.set()
        await spin()
        assert gate.finished == [0] and ("produce", 1) not in log.entries  # the write still waits
        write.futures[0].set_result(None)
        await wait_for(lambda: len(write.futures) == 2)
        write.futures[1].set_result(None)
        async with asyncio.timeout(2):
            await running
    finally:
        gate.opened.set()
        write.release()
    assert write.ended == ["done", "done"] and gate.finished == [0, 1]


async def test_a_write_that_fails_after_its_items_events_ran_is_the_sinks_error() -> None:
    log = Log()

    async def sink(item: Number) -> None:
        await asyncio.sleep(0)
        raise SinkFailed

    with pytest.raises(SinkError) as failed:
        await streaming().stream_into(Numbers(count=3), sink, events_during_sink=True)
    assert isinstance(failed.value.__cause__, SinkFailed) and failed.value.item == Number(value=0)
    assert events_of(log) == [("event", 0)]  # once: they ran during the write, nothing left to settle
    assert ("handler-finally", asyncio.current_task()) in log.entries
    assert ("produce", 1) not in log.entries
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_write_that_fails_at_once_settles_its_items_events_once_after_closing_the_handler() -> None:
    log = Log()

    def sink(item: Number) -> Awaitable[None]:
        raise SinkFailed

    with pytest.raises(SinkError):
        await streaming().stream_into(Numbers(count=3), sink, events_during_sink=True)
    assert events_of(log) == [("event", 0)]
    assert log.entries.index(("handler-finally", asyncio.current_task())) < log.entries.index(("event", 0))


class DoneWrite:
    """A write whose first step yields something a cancellation cannot cancel by the time it comes:
    a future completed meanwhile, or a bare ``yield`` (``asyncio.sleep(0)``); then it waits until
    it is released."""

    def __init__(self, first: str) -> None:
        self.first = first
        self.ended: list[str] = []
        self.release = asyncio.Event()
        self.future: asyncio.Future[None] | None = None

    async def __call__(self, item: Number) -> None:
        try:
            if self.first == "done future":
                self.future = asyncio.get_running_loop().create_future()
                await self.future
            else:
                await asyncio.sleep(0)
            await self.release.wait()
        except asyncio.CancelledError:
            self.ended.append("cancelled")
            raise
        self.ended.append("done")


async def test_cancelled_while_the_items_events_run_finishes_them_then_cancels_the_write() -> None:
    log = Log()
    gate = new_gate()
    write = HeldWrite()
    task = gated_stream(write, count=3)
    try:
        await wait_for(gate.started.is_set)
        task.cancel()
        await spin()
        assert not task.done()  # "complete": item 0's events are finished first
        gate.opened.set()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(2):
                await task
    finally:
        gate.opened.set()
        write.release()
    assert gate.finished == [0]
    # cancelled as a cancelled task cancels what it awaits: its future, then its own handling
    assert write.futures[0].cancelled() and write.ended == ["cancelled"]
    assert ("handler-finally", task) in log.entries and ("produce", 1) not in log.entries
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.parametrize("first", ["done future", "bare yield"])
async def test_a_write_waiting_on_nothing_cancellable_gets_the_cancellation_thrown_in(first: str) -> None:
    Log()
    gate = new_gate()
    write = DoneWrite(first)
    task = gated_stream(write, count=3)
    try:
        await wait_for(gate.started.is_set)
        if write.future is not None:
            write.future.set_result(None)  # done before the cancellation: Future.cancel() refuses
        task.cancel()
        await spin()
        gate.opened.set()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(2):
                await task
    finally:
        gate.opened.set()
        write.release.set()
    assert write.ended == ["cancelled"] and gate.finished == [0]


async def test_cancelled_while_the_write_waits_after_the_events_the_write_sees_the_cancellation() -> None:
    log = Log()
    write = HeldWrite()
    task = asyncio.create_task(streaming().stream_into(Numbers(count=3), write, events_during_sink=True))
    try:
        await wait_for(lambda: ("event", 0) in log.entries)
        await spin()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(2):
                await task
    finally:
        write.release()
    assert write.ended == ["cancelled"]  # as if the task had awaited the write itself
    assert events_of(log) == [("event", 0)]
    assert ("handler-finally", task) in log.entries


async def test_events_that_fail_under_the_fail_policy_come_out_as_they_are_after_the_write_ends() -> None:
    # the item is under way when its events fail: a gRPC call must see its write finish before it
    # can send a status, so the write is awaited to its end, then the events' error ends the stream
    log = Log()
    mediator = streaming(events=(FailingEvent, RecordProduced), event_failure_policy="fail")
    with pytest.raises(EventFailed):
        async with asyncio.timeout(2):
            await mediator.stream_into(Numbers(count=3), two_step_sink(), events_during_sink=True)
    trace = [e for e in log.entries if e[0] != "handler-finally"]
    assert trace == [("produce", 0), ("sink-start", 0), ("sink-done", 0)]
    assert ("handler-finally", asyncio.current_task()) in log.entries
    assert asyncio.all_tasks() == {asyncio.current_task()}


def test_closing_a_waiting_rest_closes_the_awaitable_it_resumes() -> None:
    """A suspended stream closed from outside (loop teardown) closes the sink's write with it."""
    closed: list[bool] = []

    async def write() -> None:
        try:
            await asyncio.sleep(0)
        finally:
            closed.append(True)

    rest = _first_step(write())
    assert rest is not None
    waiting = rest.__await__()
    next(waiting)  # suspended where the task would wait on what the write's first step yielded
    waiting.close()
    assert closed == [True]


@pytest.mark.parametrize("first", ["done future", "bare yield"])
async def test_a_cancellation_arriving_while_the_rest_is_cancelled_is_delivered_once(first: str) -> None:
    """As with a task: a second cancel while the first is pending reaches the write once, so the
    write's own cleanup (which awaits) is not cut short by a cancellation nobody sent."""
    seen: list[str] = []
    future: asyncio.Future[None] | None = None

    async def write() -> None:
        nonlocal future
        try:
            if first == "done future":
                future = asyncio.get_running_loop().create_future()
                await future
            else:
                await asyncio.sleep(0)
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            await asyncio.sleep(0)  # cleanup that awaits
            seen.append("cleaned up")
            raise

    rest = _first_step(write())
    assert rest is not None
    if future is not None:
        future.set_result(None)  # done: Future.cancel() refuses, the cancellation is thrown in instead
    cancelling = asyncio.create_task(rest.cancelled())
    await asyncio.sleep(0)  # at its first yield
    cancelling.cancel()  # a second cancellation
    async with asyncio.timeout(2):
        await asyncio.gather(cancelling, return_exceptions=True)
    assert seen == ["cancelled", "cleaned up"]
