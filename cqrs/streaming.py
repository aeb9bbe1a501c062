"""The streaming mediator: each yield of the handler is one item for the consumer, with the events the
handler recorded before that yield dispatched between items (see :class:`~cqrs.settings.MediatorSettings`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from typing import Any

from cqrs.container import Resolver
from cqrs.events.event import Event
from cqrs.exceptions import SinkError
from cqrs.mediator import _Dispatch, _Mediator
from cqrs.middleware import build_chain, drive_stream, emit
from cqrs.recorder import take_events
from cqrs.requests.request import Request

__all__ = ["StreamingRequestMediator"]

# what stream_into enters when it is given no guard (nullcontext is reusable and async-capable)
_UNGUARDED: contextlib.nullcontext[None] = contextlib.nullcontext()


class StreamingRequestMediator(_Mediator):
    """Streams the responses of a :class:`~cqrs.StreamingRequestHandler`.

    Promises, for one stream:

    * item k's events are finished before the handler is resumed to produce item k+1; events recorded
      after the last yield (or by a handler that never yields) are dispatched when it returns;
    * closing the stream (``aclose()``, ``break`` under ``contextlib.aclosing``, cancelling the consumer)
      closes the handler's generator in the consumer's task before ``aclose()`` returns, settles pending
      events per ``on_close``, then closes the container scope;
    * middleware wraps the whole stream, in the consumer's task (see :mod:`cqrs.middleware`).
    """

    _streaming = True

    def stream(self, request: Request) -> AsyncGenerator[Any, None]:
        """Start streaming ``request`` (do not await; iterate with ``async for``).

        Raises :class:`~cqrs.exceptions.HandlerNotFoundError` at once if nothing handles the request.
        """
        handler_type = self._handler_type(request)
        if not self.middlewares:
            return self._run(request, handler_type)
        return drive_stream(build_chain(self.middlewares, self._terminal), request)

    async def stream_into(
        self,
        request: Request,
        sink: Callable[[Any], Awaitable[object]],
        *,
        guard: contextlib.AbstractAsyncContextManager[object] | None = None,
        events_during_sink: bool = False,
    ) -> None:
        """Stream ``request`` into ``sink``: ``await sink(item)`` for each item, in the caller's task.

        Everything :meth:`stream` promises holds, with ``sink`` as the consumer: item k's events run
        once ``sink`` has taken it and before the handler makes item k+1, and a ``sink`` that raises
        (or a cancellation while it waits) stops the stream like a consumer that stops reading: the
        handler is closed and the events of the item it stopped at are settled per ``on_close``. The
        sink's exception comes out as :class:`~cqrs.exceptions.SinkError` (``__cause__`` is the
        original, ``.sink`` the sink), so the caller knows it was its own and not the handler's; a
        cancellation comes out as it is. Without middleware or ``with_send`` concurrent events that
        is also what the container scope's exit sees (with them, the scope closes inside :meth:`stream`,
        as for a consumer that stops reading). The handler's own exceptions propagate as they are.
        :class:`~cqrs.exceptions.HandlerNotFoundError` is raised when awaited, before the handler or the
        container is touched (inside ``guard``, which is entered first).

        ``sink`` may be a coroutine function or a plain function that returns an awaitable (a write
        it started): the latter saves a coroutine per item.

        ``guard``, an async context manager, is entered before anything runs and exited after all of
        it (handler closed, scope exited) in this coroutine's own frame, so its ``__aexit__`` sees
        what the caller would catch around ``await stream_into(...)`` (the handler's exceptions, a
        ``SinkError``, a cancellation, ``HandlerNotFoundError``) and may suppress or replace it. It is
        for a caller that would otherwise await this in a coroutine of its own only to wrap it: each
        item's awaited write suspends and resumes every coroutine between the task and the write, so
        that wrapper costs something per item, not once.

        ``events_during_sink=True`` says that the awaitable ``sink`` returns hands the item over in its
        first step (before it first suspends) and afterwards only waits for the hand-over to finish, as
        grpc's ``context.write`` does (it starts the send in grpc's core, then awaits its completion).
        An item's events then run while the sink waits: for a stream of one item at a time the wait is
        mostly idle (the write's completion comes back through grpc's poller thread), so the events use
        that time instead of adding to it; the handler still resumes only after both have finished. It applies
        where an item's events are finished whatever becomes of the item (``on_close="complete"``, the
        default) and to the direct loop below; elsewhere an item's events wait for the sink as usual. If
        the stream is cancelled while the events run, the sink's awaitable is cancelled as a cancelled
        task would cancel it (the future it waits on cancelled, its own handling run) before the
        cancellation propagates; if the events fail, it is awaited to its end first, so an item under
        way is finished before the stream ends (a gRPC call can only send its status after it). A
        sink whose first step does not hand the item over (one that waits first) is still served
        correctly, it just gains nothing.

        Why it exists: a consumer that only forwards items (the gRPC server, which writes each one)
        would otherwise pull them through an async generator of the mediator's, one more frame to
        resume and one more awaitable per item, which is most of what the mediator costs per item.
        Middleware, and concurrent event handling under ``with_send``, keep the generator (:meth:`stream`).
        """
        async with _UNGUARDED if guard is None else guard:
            handler_type = self._handler_type(request)
            settings = self.settings
            before_send = settings.event_timing == "before_send"
            if self.middlewares or (settings.concurrent_event_handle_enable and not before_send):
                async with contextlib.aclosing(self.stream(request)) as items:
                    async for item in items:
                        try:
                            await sink(item)
                        except Exception as exc:
                            raise SinkError(item, sink) from exc
                return
            dispatch = self._inline_dispatch()
            overlap = events_during_sink and settings.on_close == "complete" and not before_send
            async with self._scope() as resolver:
                handler = await resolver.resolve(handler_type)
                agen = handler.handle(request)
                pending: Sequence[Event] | None = None
                try:
                    async for item in agen:
                        events = take_events(handler)
                        if before_send:
                            if events:
                                await dispatch(events, resolver)
                        elif events:
                            pending = events
                            if overlap:
                                try:
                                    rest = _first_step(sink(item))
                                except Exception as exc:
                                    raise SinkError(item, sink) from exc
                                pending = None
                                if rest is None:  # the sink finished in its first step
                                    await dispatch(events, resolver)
                                    continue
                                try:
                                    await dispatch(events, resolver)
                                except asyncio.CancelledError:
                                    await rest.cancelled()  # as if the task had been waiting on it
                                    raise
                                except Exception:
                                    # the item is under way: finish its write before the events' error
                                    # ends the stream (a gRPC call settles its status only after it)
                                    with contextlib.suppress(Exception):
                                        await rest
                                    raise
                                try:
                                    await rest
                                except Exception as exc:
                                    raise SinkError(item, sink) from exc
                                continue
                        try:
                            await sink(item)
                        except Exception as exc:
                            raise SinkError(item, sink) from exc
                        if pending:
                            pending = None
                            await dispatch(events, resolver)
                    await self._dispatch_tail(handler, resolver, dispatch)
                finally:
                    await self._close(agen, None, pending, resolver)

    async def _terminal(self, request: Request) -> int:
        count = 0
        async with contextlib.aclosing(self._run(request, self._handler_type(request))) as items:
            async for item in items:
                count += 1
                await emit(item)
        return count

    async def _run(self, request: Request, handler_type: type[Any]) -> AsyncGenerator[Any, None]:
        dispatcher = self._dispatcher
        dispatch = self._inline_dispatch()
        before_send = self.settings.event_timing == "before_send"
        concurrent = self.settings.concurrent_event_handle_enable
        async with self._scope() as resolver:
            handler = await resolver.resolve(handler_type)
            agen = handler.handle(request)
            task: asyncio.Task[None] | None = None
            pending: Sequence[Event] | None = None
            try:
                async for item in agen:
                    events = take_events(handler)
                    if not events:
                        yield item
                        continue
                    if before_send:
                        await dispatch(events, resolver)
                        yield item
                    elif concurrent:
                        if not dispatcher.wants(events):
                            yield item
                            continue
                        # scheduled, not eager: the item is released first and its events run while
                        # the consumer takes it (the workers inside start eagerly)
                        task = asyncio.get_running_loop().create_task(dispatcher.dispatch(events, resolver))
                        yield item
                        try:
                            await self._join(task)
                        finally:
                            if task.done():
                                task = None
                    else:
                        pending = events
                        yield item
                        pending = None
                        await dispatch(events, resolver)
                await self._dispatch_tail(handler, resolver, dispatch)
            finally:
                await self._close(agen, task, pending, resolver)

    def _inline_dispatch(self) -> _Dispatch:
        """How the consumer's task dispatches an item's events: under ``on_close="complete"`` a
        cancellation must not interrupt events already recorded, so shielded in a task of their own;
        under ``"cancel"`` right in the consumer's task."""
        if self.settings.on_close == "complete":
            return self._dispatch_shielded
        return self._dispatcher.dispatch

    async def _dispatch_tail(self, handler: Any, resolver: Resolver, dispatch: _Dispatch) -> None:
        """Events recorded after the last yield (or by a handler that never yields)."""
        events = take_events(handler)
        if events:
            await dispatch(events, resolver)

    async def _close(
        self,
        agen: AsyncGenerator[Any, None],
        task: asyncio.Task[None] | None,
        pending: Sequence[Event] | None,
        resolver: Resolver,
    ) -> None:
        """Close the handler's generator (its ``finally`` runs now, in this task), then settle the
        events of the item the consumer stopped at."""
        try:
            await agen.aclose()
        finally:
            if task is not None or pending:
                await self._settle(task, pending, resolver)

    async def _join(self, task: asyncio.Task[None]) -> None:
        """Wait for an item's dispatch task; a cancellation of the consumer spares it under "complete"."""
        if self.settings.on_close == "complete":
            await asyncio.shield(task)
        else:
            await task

    async def _settle(
        self, task: asyncio.Task[None] | None, pending: Sequence[Event] | None, resolver: Resolver
    ) -> None:
        """Finish (``on_close="complete"``) or cancel the events of the item the consumer stopped at."""
        complete = self.settings.on_close == "complete"
        if task is not None:
            if not complete:
                task.cancel()
            await self._finish(task)
        elif pending and complete:
            await self._dispatch_shielded(pending, resolver, isolate=True)


def _first_step(awaitable: Awaitable[object]) -> _Rest | None:
    """Run ``awaitable`` up to where it first suspends: None if it finished there, else the rest of it."""
    steps = awaitable.__await__()
    try:
        return _Rest(steps, steps.send(None))
    except StopIteration:
        return None


class _Rest:
    """The rest of an awaitable whose first step has run: awaiting it hands the task what that step
    yielded (the future the awaitable waits on), then resumes the awaitable as awaiting it directly
    would have, a cancellation included."""

    __slots__ = ("_cancel", "_steps", "_yielded")

    def __init__(self, steps: Generator[Any, None, object], yielded: Any) -> None:
        self._steps = steps
        self._yielded = yielded
        self._cancel = False

    def __await__(self) -> Generator[Any, None, object]:
        steps = self._steps
        yielded = self._yielded
        while True:
            thrown: BaseException
            try:
                yield yielded
            except BaseException as exc:  # a cancellation (or a close): the awaitable's to handle
                thrown = exc
            else:
                if not self._cancel:
                    return (yield from steps)
                thrown = asyncio.CancelledError()  # cancelled while what it waited on could not be
            self._cancel = False  # delivered now; a pending one goes with it, as in a task
            try:
                yielded = steps.throw(thrown)
            except StopIteration as stop:
                return stop.value

    async def cancelled(self) -> None:
        """Cancel the awaitable as a cancelled task cancels what it awaits, then let it finish: the
        future it waits on is cancelled (else a CancelledError is thrown into it) and it runs its own
        handling of that, ``except CancelledError`` and ``finally`` blocks included. What it raises
        then is dropped: the caller is propagating the cancellation it answers."""
        cancel = getattr(self._yielded, "cancel", None)
        if cancel is None or not cancel():
            self._cancel = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self
