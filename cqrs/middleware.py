"""Middleware: ``async def __call__(request, next)`` wrapped around ``send`` **and** whole streams.

For ``send``, ``await next(request)`` returns the handler's response. For a stream, ``await next(request)``
runs the whole stream and returns the number of items it produced; meanwhile every item reaches the
consumer as it is yielded. Everything runs in the consumer's task: a ``try/finally`` in a middleware spans
the whole stream, an exception the handler raises after item k comes out of ``await next(request)``,
and contextvars a middleware sets are visible in the handler (they run in a context copied when the
stream starts, so they do not leak into the consumer).

How: the innermost ``next`` awaits ``_Emit(item)`` per item, which yields the ``_Emit`` itself up the
coroutine chain; :func:`drive_stream` (an async generator) steps the chain coroutine by hand, turns each
``_Emit`` into a ``yield item`` to the consumer and relays everything else (futures, the bare ``None`` of
``sleep(0)``) to the event loop. A middleware must therefore not run ``next`` in another task
(``asyncio.wait_for`` does on Python 3.11; use ``asyncio.timeout``).
"""

from __future__ import annotations

import contextvars
import typing
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator, Sequence
from typing import Any, Protocol

from cqrs.requests.request import Request
from cqrs.requests.request_stream import RequestStream

__all__ = ["Middleware", "Next", "StreamClosed", "build_chain", "drive_stream"]

Next = Callable[[Request | RequestStream[Any]], Awaitable[Any]]


class Middleware(Protocol):
    """Wraps a send or a whole stream; call ``await next(request)`` to go on."""

    async def __call__(self, request: Request | RequestStream[Any], next: Next) -> Any: ...


class StreamClosed(BaseException):
    """Raised out of a stream's ``await next(request)`` when the consumer closes the stream early.

    A ``GeneratorExit`` cannot be used: thrown into a chain of awaits it would close the inner coroutines
    without letting them await their clean-up. By the time a middleware sees it, the handler's generator
    has been closed. It derives from ``BaseException`` so ``except Exception`` does not swallow it; a
    middleware that catches it must re-raise it (or return).
    """


class _Link:
    __slots__ = ("middleware", "next")

    def __init__(self, middleware: Middleware, next: Next) -> None:
        self.middleware = middleware
        self.next = next

    def __call__(self, request: Request | RequestStream[Any]) -> Awaitable[Any]:
        return self.middleware(request, self.next)


def build_chain(middlewares: Sequence[Middleware], terminal: Next) -> Next:
    """``middlewares[0]`` is outermost: it runs first and its ``finally`` last."""
    call = terminal
    for middleware in reversed(middlewares):
        call = _Link(middleware, call)
    return call


class _Emit:
    """Awaited by the innermost ``next`` of a stream for each item; the driver hands it to the consumer."""

    __slots__ = ("item",)

    def __init__(self, item: Any) -> None:
        self.item = item

    def __await__(self) -> Generator[Any, Any, None]:
        yield self


class _Raw:
    """Passes an object the chain yielded up to the event loop and returns what the loop sends back."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.obj)


def emit(item: Any) -> _Emit:
    """``await emit(item)`` inside a driven chain releases ``item`` to the stream's consumer."""
    return _Emit(item)


async def drive_stream(chain: Next, request: Request | RequestStream[Any]) -> AsyncGenerator[Any, None]:
    """Run ``chain(request)`` (the middleware chain of one stream) in the caller's task, yielding its items.

    The chain coroutine is created on the first ``__anext__``, so a stream closed before it starts leaves
    no never-awaited coroutine behind.

    Closing this generator (``aclose()``, ``break`` under ``aclosing``, cancellation) throws
    :class:`StreamClosed` into the chain and keeps driving it until it finishes, so the handler's
    generator and every middleware ``finally`` have run before ``aclose()`` returns.
    """
    coro = typing.cast(Coroutine[Any, Any, Any], chain(request))
    run = contextvars.copy_context().run
    send = coro.send
    throw = coro.throw
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                if error is None:
                    obj = run(send, value)
                else:
                    obj = run(throw, error)
                    error = None
            except StopIteration:
                return
            value = None
            if type(obj) is _Emit:
                try:
                    yield obj.item
                except GeneratorExit:
                    await _close_chain(coro, run)
                    raise
                except BaseException as exc:  # athrow() by the consumer goes to the handler
                    error = exc
            else:
                try:
                    value = await _Raw(obj)
                except BaseException as exc:  # cancellation reaches the awaiting handler
                    error = exc
    finally:
        coro.close()


async def _close_chain(coro: Coroutine[Any, Any, Any], run: Callable[..., Any]) -> None:
    value: Any = None
    error: BaseException | None = StreamClosed()
    while True:
        try:
            obj = run(coro.throw, error) if error is not None else run(coro.send, value)
        except (StopIteration, StreamClosed):
            return
        error = None
        value = None
        if type(obj) is _Emit:
            coro.close()
            raise RuntimeError("a stream produced another item while it was being closed")
        try:
            value = await _Raw(obj)
        except BaseException as exc:
            error = exc
