"""Event dispatch: follow-ups breadth-first with a depth limit, concurrency limits, failure policy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import Any

import pytest

import cqrs

from ._support import Log, Numbers, Produced, RecordProduced, spin, streaming, wait_for


class Level1(cqrs.DomainEvent):
    tag: str


class Level2(cqrs.DomainEvent):
    tag: str


class FanOut(cqrs.EventHandler[Produced]):
    async def handle(self, event: Produced) -> None:
        Log.current.add(("produced", event.value))
        self.add_event(Level1(tag=f"{event.value}a"))
        self.add_event(Level1(tag=f"{event.value}b"))


class OnLevel1(cqrs.EventHandler[Level1]):
    async def handle(self, event: Level1) -> None:
        Log.current.add(("level1", event.tag))
        self.add_event(Level2(tag=event.tag))


class OnLevel2(cqrs.EventHandler[Level2]):
    async def handle(self, event: Level2) -> None:
        Log.current.add(("level2", event.tag))


async def test_follow_up_events_are_dispatched_breadth_first() -> None:
    log = Log()
    mediator = cqrs.bootstrap_streaming(
        commands_mapper=lambda m: m.bind(Numbers, _numbers_handler()),
        domain_events_mapper=lambda m: (
            m.bind(Produced, FanOut),
            m.bind(Level1, OnLevel1),
            m.bind(Level2, OnLevel2),
        ),
    )
    assert [n.value async for n in mediator.stream(Numbers(count=1))] == [0]
    assert [e for e in log.entries if e[0] != "produce" and e[0] != "handler-finally"] == [
        ("produced", 0),
        ("level1", "0a"),
        ("level1", "0b"),
        ("level2", "0a"),
        ("level2", "0b"),
    ]


def _numbers_handler() -> type[Any]:
    from ._support import NumbersHandler

    return NumbersHandler


class Ping(cqrs.DomainEvent):
    pass


class Pong(cqrs.DomainEvent):
    pass


class StartPing(cqrs.EventHandler[Produced]):
    async def handle(self, event: Produced) -> None:
        self.add_event(Ping())


class PingHandler(cqrs.EventHandler[Ping]):
    async def handle(self, event: Ping) -> None:
        self.add_event(Pong())


class PongHandler(cqrs.EventHandler[Pong]):
    async def handle(self, event: Pong) -> None:
        self.add_event(Ping())


def _cycle(**settings: Any) -> cqrs.StreamingRequestMediator:
    return cqrs.bootstrap_streaming(
        commands_mapper=lambda m: m.bind(Numbers, _numbers_handler()),
        domain_events_mapper=lambda m: (
            m.bind(Produced, StartPing),
            m.bind(Ping, PingHandler),
            m.bind(Pong, PongHandler),
        ),
        max_event_depth=4,
        **settings,
    )


@pytest.mark.parametrize("concurrent", [False, True])
async def test_a_cycle_fails_with_the_event_chain_under_fail(concurrent: bool) -> None:
    Log()
    mediator = _cycle(event_failure_policy="fail", concurrent_event_handle_enable=concurrent)
    with pytest.raises(cqrs.EventDepthExceededError) as caught:
        async for _ in mediator.stream(Numbers(count=2)):
            pass
    assert caught.value.chain == ("Produced", "Ping", "Pong", "Ping", "Pong", "Ping")
    assert "max_event_depth=4: Produced -> Ping -> Pong -> Ping -> Pong -> Ping" in str(caught.value)


async def test_a_cycle_is_reported_and_the_stream_goes_on_under_isolate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    Log()
    errors: list[tuple[Any, Any, BaseException]] = []
    mediator = _cycle(on_event_error=lambda e, h, exc: errors.append((e, h, exc)))
    with caplog.at_level(logging.ERROR, logger="cqrs.events"):
        assert [n.value async for n in mediator.stream(Numbers(count=2))] == [0, 1]
    assert mediator.stats.event_handler_failures == 2
    assert all(isinstance(exc, cqrs.EventDepthExceededError) for _, _, exc in errors)
    assert any(r.name == "cqrs.events" for r in caplog.records)


# --- concurrency ------------------------------------------------------------------------------------


class Probe:
    running = 0
    peak = 0
    release: asyncio.Event
    tasks: set[asyncio.Task[Any] | None]

    @classmethod
    def reset(cls) -> None:
        cls.running = cls.peak = 0
        cls.release = asyncio.Event()
        cls.tasks = set()


def _probe_handler(name: str) -> type[Any]:
    class Handler(cqrs.EventHandler[Produced]):
        async def handle(self, event: Produced) -> None:
            Probe.tasks.add(asyncio.current_task())
            Probe.running += 1
            Probe.peak = max(Probe.peak, Probe.running)
            try:
                await Probe.release.wait()
            finally:
                Probe.running -= 1

    Handler.__qualname__ = name
    return Handler


PROBES = tuple(_probe_handler(f"Probe{i}") for i in range(5))


async def test_sequential_handlers_run_inline_in_the_consumer_task_under_cancel() -> None:
    Probe.reset()
    Probe.release.set()
    Log()
    mediator = streaming(events=PROBES, on_close="cancel")
    assert [n.value async for n in mediator.stream(Numbers(count=2))] == [0, 1]
    assert Probe.tasks == {asyncio.current_task()}
    assert Probe.peak == 1


async def test_under_complete_an_event_handler_runs_as_one_task_of_its_own_from_start_to_end() -> None:
    seen: list[tuple[object, object]] = []

    class Suspends(cqrs.EventHandler[Produced]):
        async def handle(self, event: Produced) -> None:
            before = asyncio.current_task()
            await asyncio.sleep(0)  # a cancellation of the consumer could reach it from here: it has a task
            seen.append((before, asyncio.current_task()))

    Log()
    mediator = streaming(events=(Suspends,))  # on_close="complete"
    consumer = asyncio.create_task(_drain(mediator.stream(Numbers(count=2))))
    assert await consumer == [0, 1]
    assert len(seen) == 2
    for before, after in seen:
        assert before is after and before is not consumer


async def test_a_timeout_an_event_handler_starts_before_its_first_await_is_its_own() -> None:
    outcome: list[str] = []

    class TimesOut(cqrs.EventHandler[Produced]):
        async def handle(self, event: Produced) -> None:
            try:
                async with asyncio.timeout(0.01):  # entered before the first suspension
                    await asyncio.sleep(5)
            except TimeoutError:
                outcome.append("handler timed out")

    Log()
    mediator = streaming(events=(TimesOut,))  # on_close="complete"
    consumer = asyncio.create_task(_drain(mediator.stream(Numbers(count=2))))
    assert await asyncio.wait_for(consumer, 5) == [0, 1]  # the consumer was not cancelled in its place
    assert outcome == ["handler timed out"] * 2
    assert mediator.stats.event_handler_failures == 0


@pytest.mark.parametrize("timing", ["with_send", "before_send"])
async def test_concurrent_handlers_are_bounded_per_stream(timing: str) -> None:
    Probe.reset()
    Log()
    mediator = streaming(
        events=PROBES,
        concurrent_event_handle_enable=True,
        max_concurrent_event_handlers=2,
        event_timing=timing,
    )
    consumer = asyncio.create_task(_drain(mediator.stream(Numbers(count=1))))
    await wait_for(lambda: Probe.running == 2)
    await spin()
    assert Probe.running == 2
    Probe.release.set()
    assert await consumer == [0]
    assert Probe.peak == 2


async def _drain(stream: Any) -> list[int]:
    async with contextlib.aclosing(stream):
        return [n.value async for n in stream]


async def test_global_limit_is_shared_by_the_streams_of_a_mediator() -> None:
    Probe.reset()
    Log()
    mediator = streaming(
        events=PROBES,
        concurrent_event_handle_enable=True,
        max_concurrent_event_handlers=2,
        global_max_concurrent_event_handlers=3,
    )
    first = asyncio.create_task(_drain(mediator.stream(Numbers(count=1))))
    second = asyncio.create_task(_drain(mediator.stream(Numbers(count=1))))
    await wait_for(lambda: Probe.running == 3)  # 2 + 1: the second stream got a slot too
    await spin()
    assert Probe.running == 3
    Probe.release.set()
    assert await first == [0] and await second == [0]
    assert Probe.peak == 3


async def test_global_limit_also_caps_sequential_handlers_across_streams() -> None:
    Probe.reset()
    Log()
    mediator = streaming(events=PROBES[:1], global_max_concurrent_event_handlers=2)
    streams = [asyncio.create_task(_drain(mediator.stream(Numbers(count=1)))) for _ in range(4)]
    await wait_for(lambda: Probe.running >= 2)
    await spin()
    assert Probe.running == 2  # four streams, one handler each, but only two slots
    Probe.release.set()
    assert [await s for s in streams] == [[0]] * 4
    assert Probe.peak == 2


class BlockFirstCall(cqrs.EventHandler[Produced]):
    calls = 0

    async def handle(self, event: Produced) -> None:
        BlockFirstCall.calls += 1
        if BlockFirstCall.calls == 1:
            Probe.running += 1
            await Probe.release.wait()
        Log.current.add(("event", event.value))


@pytest.mark.parametrize("concurrent", [False, True])
async def test_a_stream_whose_event_handlers_block_does_not_delay_another_streams_events(
    concurrent: bool,
) -> None:
    Probe.reset()
    BlockFirstCall.calls = 0
    log = Log()
    mediator = streaming(
        events=(BlockFirstCall,), concurrent_event_handle_enable=concurrent, max_concurrent_event_handlers=1
    )
    blocked = asyncio.create_task(_drain(mediator.stream(Numbers(count=2))))
    await wait_for(lambda: Probe.running == 1)
    other = [n.value async for n in mediator.stream(Numbers(count=3))]
    assert other == [0, 1, 2]
    assert [e for e in log.entries if e[0] == "event"] == [("event", 0), ("event", 1), ("event", 2)]
    assert not blocked.done()
    Probe.release.set()
    assert await blocked == [0, 1]


# --- failure policy ---------------------------------------------------------------------------------


class Boom(cqrs.EventHandler[Produced]):
    async def handle(self, event: Produced) -> None:
        raise RuntimeError(f"boom {event.value}")


@pytest.mark.parametrize("concurrent", [False, True])
async def test_isolate_logs_counts_calls_the_hook_and_goes_on(
    concurrent: bool, caplog: pytest.LogCaptureFixture
) -> None:
    log = Log()
    hooked: list[tuple[Any, Any, str]] = []
    mediator = streaming(
        events=(Boom, RecordProduced),
        concurrent_event_handle_enable=concurrent,
        on_event_error=lambda event, handler, exc: hooked.append((event, handler, str(exc))),
    )
    with caplog.at_level(logging.ERROR, logger="cqrs.events"):
        assert [n.value async for n in mediator.stream(Numbers(count=3))] == [0, 1, 2]
    assert mediator.stats.event_handler_failures == 3
    assert hooked == [(Produced(value=i), Boom, f"boom {i}") for i in range(3)]
    assert sorted(e[1] for e in log.entries if e[0] == "event") == [0, 1, 2]
    records = [r for r in caplog.records if r.name == "cqrs.events"]
    assert len(records) == 3 and records[0].exc_info is not None and "Boom" in records[0].getMessage()


@pytest.mark.parametrize("timing", ["with_send", "before_send"])
async def test_fail_raises_from_the_stream_and_cancels_sibling_event_tasks(timing: str) -> None:
    Probe.reset()
    Log()
    cancelled: list[str] = []

    class Sibling(cqrs.EventHandler[Produced]):
        async def handle(self, event: Produced) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append("sibling")
                raise

    class LateBoom(cqrs.EventHandler[Produced]):
        async def handle(self, event: Produced) -> None:
            await spin(3)
            raise RuntimeError("late boom")

    mediator = streaming(
        events=(Sibling, LateBoom),
        concurrent_event_handle_enable=True,
        event_failure_policy="fail",
        event_timing=timing,
    )
    with pytest.raises(RuntimeError, match="late boom"):
        async with contextlib.aclosing(mediator.stream(Numbers(count=3))) as stream:
            async for _ in stream:
                pass
    assert cancelled == ["sibling"]
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_fail_in_sequential_mode_raises_and_stops_the_handler() -> None:
    log = Log()
    mediator = streaming(events=(Boom,), event_failure_policy="fail", event_timing="with_send")
    got: list[int] = []
    with pytest.raises(RuntimeError, match="boom 0"):
        async for n in mediator.stream(Numbers(count=3)):
            got.append(n.value)
    assert got == [0]  # with_send: item 0 was out before its event failed
    assert ("produce", 1) not in log.entries
    assert mediator.stats.event_handler_failures == 0


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks exist from Python 3.12")
@pytest.mark.parametrize(
    ("timing", "concurrent"), [("with_send", False), ("before_send", False), ("before_send", True)]
)
async def test_handlers_that_never_suspend_cost_no_loop_iteration_per_item(
    timing: str, concurrent: bool
) -> None:
    """Dispatch tasks (and concurrent workers) start eagerly: a stream whose event handlers never
    suspend runs to the end without giving the loop a single turn, however many items it has.
    (Concurrent ``with_send`` is left out on purpose: its events run while the consumer takes the item.)"""

    class AlsoRecordProduced(RecordProduced):
        pass

    Log()
    mediator = streaming(
        events=(RecordProduced, AlsoRecordProduced),
        concurrent_event_handle_enable=concurrent,
        event_timing=timing,
    )
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)  # the counter has taken its first turn
    before = turns
    assert await _drain(mediator.stream(Numbers(count=50))) == list(range(50))
    after = turns
    counter.cancel()
    assert after == before
    assert Log.current.entries.count(("event", 49)) == 2


async def test_concurrent_with_send_releases_the_item_before_its_events_run() -> None:
    """The documented order: the consumer has item k before k's handlers start, and they finish
    before the handler is resumed for item k+1."""
    Log()
    mediator = streaming(concurrent_event_handle_enable=True, event_timing="with_send")
    async with contextlib.aclosing(mediator.stream(Numbers(count=2))) as stream:
        async for number in stream:
            Log.current.add(("got", number.value))
    entries = [e for e in Log.current.entries if e[0] != "handler-finally"]
    assert entries == [("produce", 0), ("got", 0), ("event", 0), ("produce", 1), ("got", 1), ("event", 1)]


async def test_a_concurrent_worker_cancelled_at_once_does_not_stop_the_other_jobs() -> None:
    """A handler that raises CancelledError without suspending ends its worker at once; the jobs
    behind it must still run (by the other workers), as with ordinary tasks."""
    handled: list[int] = []

    class CancelsItself(cqrs.EventHandler[Produced]):
        async def handle(self, event: Produced) -> None:
            raise asyncio.CancelledError

    class Records(cqrs.EventHandler[Produced]):
        async def handle(self, event: Produced) -> None:
            handled.append(event.value)

    mediator = streaming(events=(CancelsItself, Records), concurrent_event_handle_enable=True)
    events = [Produced(value=1), Produced(value=2), Produced(value=3)]
    await mediator._dispatcher.dispatch(events, cqrs.Container())
    assert sorted(handled) == [1, 2, 3]


async def test_a_resolver_that_answers_any_attribute_is_only_asked_to_resolve() -> None:
    """Only the container's own scopes are asked for a plain handler directly; any other resolver
    (a DI container with __getattr__, a mock) gets resolve() calls and nothing else."""
    handled: list[int] = []

    class Records(cqrs.EventHandler[Produced]):
        async def handle(self, event: Produced) -> None:
            handled.append(event.value)

    class AnswersEverything:
        def __getattr__(self, name: str) -> Any:
            return lambda *args: "not a handler"

        async def resolve(self, type_: type[Any]) -> Any:
            return type_()

    mediator = streaming(events=(Records,))
    await mediator._dispatcher.dispatch([Produced(value=7)], AnswersEverything())
    assert handled == [7]
    assert mediator.stats.event_handler_failures == 0
