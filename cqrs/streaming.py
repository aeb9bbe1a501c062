"""The streaming mediator: each yield of the handler is one item for the consumer, with the events the
handler recorded before that yield dispatched between items (see :class:`~cqrs.settings.MediatorSettings`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

from cqrs.container import Resolver
from cqrs.events.event import Event
from cqrs.exceptions import SinkError
from cqrs.mediator import _Dispatch, _Mediator
from cqrs.middleware import build_chain, drive_stream, emit
from cqrs.recorder import take_events
from cqrs.requests.request import Request
from cqrs.requests.request_stream import RequestStream

__all__ = ["StreamingRequestMediator"]


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

    def stream(self, request: Request | RequestStream[Any]) -> AsyncGenerator[Any, None]:
        """Start streaming ``request`` (do not await; iterate with ``async for``). A
        :class:`~cqrs.RequestStream` goes to its ``request_type``'s bidirectional handler.

        Raises :class:`~cqrs.exceptions.HandlerNotFoundError` at once if nothing handles the request.
        """
        handler_type = self._handler_type(request)
        if not self.middlewares:
            return self._run(request, handler_type)
        return drive_stream(build_chain(self.middlewares, self._terminal), request)

    async def stream_into(
        self, request: Request | RequestStream[Any], sink: Callable[[Any], Awaitable[object]]
    ) -> None:
        """Stream ``request`` into ``sink``: ``await sink(item)`` for each item, in the caller's task.

        Everything :meth:`stream` promises holds, with ``sink`` as the consumer. A ``sink`` that raises
        stops the stream like a consumer that stops reading; its exception comes out as
        :class:`~cqrs.exceptions.SinkError` (``__cause__`` is the original), so the caller can tell
        its own failure from the handler's, which propagate as they are.
        """
        async with contextlib.aclosing(self.stream(request)) as items:
            async for item in items:
                try:
                    await sink(item)
                except Exception as exc:
                    raise SinkError(item, sink) from exc

    async def _terminal(self, request: Request | RequestStream[Any]) -> int:
        count = 0
        async with contextlib.aclosing(self._run(request, self._handler_type(request))) as items:
            async for item in items:
                count += 1
                await emit(item)
        return count

    async def _run(
        self, request: Request | RequestStream[Any], handler_type: type[Any]
    ) -> AsyncGenerator[Any, None]:
        dispatcher = self._dispatcher
        dispatch = self._inline_dispatch()
        before_send = self.settings.event_timing == "before_send"
        concurrent = self.settings.concurrent_event_handle_enable
        async with self._scope() as resolver:
            handler = await resolver.resolve(handler_type)
            requests = None
            if isinstance(request, RequestStream):
                requests = self._requests(handler, request, resolver, dispatch)
            agen = handler.handle(request if requests is None else requests)
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
                try:
                    await self._close(agen, task, pending, resolver)
                finally:
                    if requests is not None:
                        await requests.aclose()

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
