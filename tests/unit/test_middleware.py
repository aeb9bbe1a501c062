"""Middleware around send and whole streams, all in the consumer's task (the trampoline)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from typing import Any

import pytest

import cqrs
from cqrs.middleware import StreamClosed

from ._support import Log, Number, Numbers, NumbersHandler, Produced, RecordProduced, streaming, wait_for

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class Trace:
    def __init__(self, name: str, log: list[Any]) -> None:
        self.name = name
        self.log = log

    async def __call__(self, request: cqrs.Request, next: cqrs.Next) -> Any:
        self.log.append((self.name, "before", asyncio.current_task()))
        try:
            result = await next(request)
            self.log.append((self.name, "result", result))
            return result
        except BaseException as exc:
            self.log.append((self.name, "raised", type(exc).__name__))
            raise
        finally:
            self.log.append((self.name, "finally"))


async def test_middlewares_wrap_the_whole_stream_in_order_in_the_consumer_task() -> None:
    log = Log()
    trace: list[Any] = []
    mediator = streaming(middlewares=[Trace("outer", trace), Trace("inner", trace)])
    items = []
    async for n in mediator.stream(Numbers(count=3)):
        items.append(n.value)
        trace.append(("item", n.value))
    me = asyncio.current_task()
    assert items == [0, 1, 2]
    assert trace == [
        ("outer", "before", me),
        ("inner", "before", me),
        ("item", 0),
        ("item", 1),
        ("item", 2),
        ("inner", "result", 3),  # await next(request) returns the item count for a stream
        ("inner", "finally"),
        ("outer", "result", 3),
        ("outer", "finally"),
    ]
    assert [e[1] for e in log.entries if e[0] == "event"] == [0, 1, 2]
    assert ("handler-finally", me) in log.entries


class SetRequestId:
    async def __call__(self, request: cqrs.Request, next: cqrs.Next) -> Any:
        token = REQUEST_ID.set("req-1")
        try:
            return await next(request)
        finally:
            REQUEST_ID.reset(token)


class SeesContext(cqrs.StreamingRequestHandler[Numbers, Number]):
    async def handle(self, request: Numbers) -> AsyncIterator[Number]:
        for i in range(2):
            await asyncio.sleep(0)
            Log.current.add(("handler-sees", REQUEST_ID.get()))
            self.add_event(Produced(value=i))
            yield Number(value=i)


class EventSeesContext(cqrs.EventHandler[Produced]):
    async def handle(self, event: Produced) -> None:
        Log.current.add(("event-sees", REQUEST_ID.get()))


@pytest.mark.parametrize("concurrent", [False, True])
async def test_contextvars_set_by_middleware_are_visible_in_handlers_and_do_not_leak(
    concurrent: bool,
) -> None:
    log = Log()
    mediator = streaming(
        handler=SeesContext,
        events=(EventSeesContext,),
        middlewares=[SetRequestId()],
        concurrent_event_handle_enable=concurrent,
    )
    async for _ in mediator.stream(Numbers()):
        assert REQUEST_ID.get() == "-"  # the consumer's context is untouched
    assert set(log.entries) == {("handler-sees", "req-1"), ("event-sees", "req-1")}


class FailsAfter(cqrs.StreamingRequestHandler[Numbers, Number]):
    async def handle(self, request: Numbers) -> AsyncIterator[Number]:
        for i in range(request.count):
            yield Number(value=i)
        raise cqrs.NotFoundError("gone")


async def test_an_exception_after_k_items_comes_out_of_next_and_the_stream() -> None:
    Log()
    trace: list[Any] = []
    mediator = streaming(handler=FailsAfter, middlewares=[Trace("mw", trace)])
    got = []
    with pytest.raises(cqrs.NotFoundError, match="gone"):
        async for n in mediator.stream(Numbers(count=2)):
            got.append(n.value)
    assert got == [0, 1]
    assert trace[1:] == [("mw", "raised", "NotFoundError"), ("mw", "finally")]


class TranslateErrors:
    async def __call__(self, request: cqrs.Request, next: cqrs.Next) -> Any:
        try:
            return await next(request)
        except cqrs.NotFoundError as exc:
            raise cqrs.UnavailableError(f"translated: {exc.message}") from exc


async def test_middleware_can_translate_a_stream_error() -> None:
    Log()
    mediator = streaming(handler=FailsAfter, middlewares=[TranslateErrors()])
    with pytest.raises(cqrs.UnavailableError, match="translated: gone"):
        async for _ in mediator.stream(Numbers(count=1)):
            pass


async def test_aclose_while_parked_at_a_yield_runs_handler_and_middleware_finally() -> None:
    log = Log()
    trace: list[Any] = []
    mediator = streaming(middlewares=[Trace("mw", trace)])
    async with contextlib.aclosing(mediator.stream(Numbers(count=5))) as stream:
        async for n in stream:
            if n.value == 1:
                break
    assert ("handler-finally", asyncio.current_task()) in log.entries
    assert trace[1:] == [("mw", "raised", "StreamClosed"), ("mw", "finally")]
    assert ("event", 1) in log.entries  # on_close="complete": item 1's recorded event was handled


class Blocks(cqrs.StreamingRequestHandler[Numbers, Number]):
    started: asyncio.Event

    async def handle(self, request: Numbers) -> AsyncIterator[Number]:
        try:
            yield Number(value=0)
            Blocks.started.set()
            await asyncio.Event().wait()
            yield Number(value=1)  # pragma: no cover
        finally:
            await asyncio.sleep(0)
            Log.current.add(("handler-finally", asyncio.current_task()))


async def test_cancelling_the_consumer_reaches_the_handler_through_middleware() -> None:
    log = Log()
    trace: list[Any] = []
    Blocks.started = asyncio.Event()
    mediator = streaming(handler=Blocks, middlewares=[Trace("mw", trace)])

    async def consume() -> None:
        async with contextlib.aclosing(mediator.stream(Numbers())) as stream:
            async for _ in stream:
                pass

    task = asyncio.create_task(consume())
    await wait_for(Blocks.started.is_set)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log.entries == [("handler-finally", task)]
    assert trace[1:] == [("mw", "raised", "CancelledError"), ("mw", "finally")]


async def test_timeout_in_middleware_cancels_the_handler_in_the_same_task() -> None:
    log = Log()
    Blocks.started = asyncio.Event()

    class Deadline:
        async def __call__(self, request: cqrs.Request, next: cqrs.Next) -> Any:
            async with asyncio.timeout(0.05):
                return await next(request)

    mediator = streaming(handler=Blocks, middlewares=[Deadline()])
    with pytest.raises(TimeoutError):
        async for _ in mediator.stream(Numbers()):
            pass
    assert log.entries == [("handler-finally", asyncio.current_task())]


async def test_a_stream_closed_before_it_starts_leaves_nothing_behind() -> None:
    Log()
    mediator = streaming(middlewares=[Trace("mw", [])])
    stream = mediator.stream(Numbers())
    await stream.aclose()  # no "coroutine was never awaited" warning (pytest turns warnings into errors)


async def test_short_circuiting_middleware_yields_nothing() -> None:
    class Deny:
        async def __call__(self, request: cqrs.Request, next: cqrs.Next) -> Any:
            raise cqrs.PermissionDeniedError("no")

    mediator = streaming(middlewares=[Deny()])
    with pytest.raises(cqrs.PermissionDeniedError):
        async for _ in mediator.stream(Numbers()):
            pass


class Doubles(cqrs.RequestHandler[Numbers, Number]):
    async def handle(self, request: Numbers) -> Number:
        self.add_event(Produced(value=request.count))
        return Number(value=request.count * 2)


async def test_middlewares_wrap_send_and_see_the_response() -> None:
    log = Log()
    trace: list[Any] = []
    mediator = cqrs.bootstrap(
        commands_mapper=lambda m: m.bind(Numbers, Doubles),
        domain_events_mapper=lambda m: m.bind(Produced, RecordProduced),
        middlewares=[Trace("a", trace), Trace("b", trace)],
    )
    assert await mediator.send(Numbers(count=4)) == Number(value=8)
    assert [t[:2] for t in trace] == [
        ("a", "before"),
        ("b", "before"),
        ("b", "result"),
        ("b", "finally"),
        ("a", "result"),
        ("a", "finally"),
    ]
    assert log.entries == [("event", 4)]


def test_stream_closed_is_not_an_exception() -> None:
    assert not issubclass(StreamClosed, Exception)
    assert NumbersHandler is not None
