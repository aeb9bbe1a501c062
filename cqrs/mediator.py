"""The unary mediator and what both mediators share: maps, container, middleware, dispatcher, settings.

A mediator holds no per-request state: each ``send`` (or stream) opens its own container scope, resolves
a new handler instance, and drops both when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from cqrs._eager import start_eagerly
from cqrs.container import Container, Resolver, SupportsScope, adapt
from cqrs.events.dispatcher import DispatchStats, EventDispatcher
from cqrs.events.event import Event
from cqrs.events.map import EventMap
from cqrs.exceptions import HandlerNotFoundError, InvalidHandlerError
from cqrs.middleware import Middleware, build_chain
from cqrs.recorder import take_events
from cqrs.requests.map import RequestMap
from cqrs.requests.request import Request
from cqrs.requests.request_handler import (
    is_streaming_handler,
    is_sync_streaming_handler,
    takes_request_stream,
)
from cqrs.requests.request_stream import RequestStream
from cqrs.settings import MediatorSettings

if TYPE_CHECKING:
    from cqrs.events.event_emitter import EventEmitter
    from cqrs.message_brokers.protocol import MessageBroker
    from cqrs.middlewares.base import MiddlewareChain

__all__ = ["RequestMediator"]  # StreamingRequestMediator and EventMediator resolve lazily (below)

ResT = TypeVar("ResT")
_Dispatch = Callable[[Sequence[Event], Resolver], Awaitable[None]]


class _Mediator:
    """State and checks shared by :class:`RequestMediator` and the streaming mediator."""

    _streaming = False

    def __init__(
        self,
        request_map: RequestMap,
        *,
        event_map: EventMap | None = None,
        container: Resolver | None = None,
        middlewares: Sequence[Middleware] | None = (),
        settings: MediatorSettings | None = None,
        event_emitter: EventEmitter | None = None,
        message_broker: MessageBroker | None = None,
        middleware_chain: MiddlewareChain | None = None,
        max_concurrent_event_handlers: int | None = None,
        concurrent_event_handle_enable: bool | None = None,
        dispatcher_type: type[Any] | None = None,
    ) -> None:
        """The keywords after ``settings`` are python-cqrs's: ``event_emitter`` receives every event the
        handlers record (see :mod:`cqrs.events.event_emitter`), ``message_broker`` builds one around this
        mediator's event map and container, ``middleware_chain`` adds its middlewares after
        ``middlewares``, ``max_concurrent_event_handlers`` and ``concurrent_event_handle_enable`` override
        the same-named ``settings``; ``dispatcher_type`` may only name python-cqrs's own dispatcher."""
        if dispatcher_type is not None and dispatcher_type.__module__.partition(".")[0] != "cqrs":
            raise TypeError(
                f"dispatcher_type={dispatcher_type.__qualname__}: custom dispatchers are not supported; "
                f"wrap requests with middleware instead"
            )
        self.request_map = request_map
        if event_map is None:
            # a stand-in emitter (a test's Mock) may have no map
            event_map = getattr(event_emitter, "event_map", None)
            if event_map is None:
                event_map = EventMap()
        self.event_map = event_map
        self.container: Resolver = adapt(container) if container is not None else Container()
        chain = middleware_chain.middlewares if middleware_chain is not None else ()
        self.middlewares: tuple[Middleware, ...] = (*(middlewares or ()), *chain)
        settings = settings if settings is not None else MediatorSettings()
        overrides: dict[str, Any] = {}
        if max_concurrent_event_handlers is not None:
            overrides["max_concurrent_event_handlers"] = max_concurrent_event_handlers
        if concurrent_event_handle_enable is not None:
            overrides["concurrent_event_handle_enable"] = concurrent_event_handle_enable
        self.settings = dataclasses.replace(settings, **overrides) if overrides else settings
        own_emitter = event_emitter is None and message_broker is not None
        if own_emitter:
            from cqrs.events.event_emitter import EventEmitter

            # exposed as python-cqrs exposes it; events still go through this mediator's dispatcher
            event_emitter = EventEmitter(self.event_map, self.container, message_broker)
        self.event_emitter = event_emitter
        self._dispatcher = EventDispatcher(
            self.event_map,
            self.settings,
            emitter=None if own_emitter else event_emitter,
            broker=message_broker if own_emitter else None,
        )
        self._handlers = request_map._handlers
        self._scoped = isinstance(self.container, SupportsScope)
        request_map._watch(self._check)  # now, and for every later bind()

    @property
    def stats(self) -> DispatchStats:
        """Counters, e.g. ``stats.event_handler_failures`` (isolated event-handler errors)."""
        return self._dispatcher.stats

    def _check(self, request_type: type[Request], handler_type: type[Any]) -> None:
        handler_type = getattr(handler_type, "primary", handler_type)  # a fallback pair: its primary
        if is_sync_streaming_handler(handler_type):
            raise InvalidHandlerError(
                f"{handler_type.__qualname__} (bound to {request_type.__qualname__}) streams from a plain "
                f"generator; mediators serve async generators only: make handle an 'async def' with 'yield'"
            )
        if is_streaming_handler(handler_type) != self._streaming:
            kind, other = ("a streaming", "StreamingRequestMediator.stream / bootstrap_streaming()")
            if self._streaming:
                kind, other = ("not a streaming", "RequestMediator.send / bootstrap()")
            raise InvalidHandlerError(
                f"{handler_type.__qualname__} (bound to {request_type.__qualname__}) is {kind} handler; "
                f"{type(self).__name__} cannot run it: use {other}"
            )

    def _handler_type(self, request: Request | RequestStream[Any]) -> type[Any]:
        streamed = type(request) is RequestStream
        request_type = request.request_type if isinstance(request, RequestStream) else type(request)
        handler_type = self._handlers.get(request_type)
        if handler_type is None:
            raise HandlerNotFoundError(
                f"no handler is bound to {request_type.__qualname__} in this {type(self).__name__} "
                f"(bound: {self.request_map.describe()}); bind one with commands_mapper/queries_mapper"
            )
        if takes_request_stream(handler_type) != streamed:
            name = request_type.__qualname__
            if streamed:
                raise TypeError(
                    f"{handler_type.__qualname__} handles one {name} at a time: "
                    f"pass a {name}, not a RequestStream"
                )
            raise TypeError(
                f"{handler_type.__qualname__} reads a stream of {name}: "
                f"pass cqrs.RequestStream({name}, requests)"
            )
        return handler_type

    async def _requests(
        self, handler: Any, requests: RequestStream[Any], resolver: Resolver, dispatch: _Dispatch
    ) -> AsyncGenerator[Any, None]:
        """``requests`` as ``handler`` reads them: the events it recorded so far are dispatched before
        the next request is awaited; the source is closed with this generator."""
        source = aiter(requests)
        try:
            while True:
                events = take_events(handler)
                if events:
                    await dispatch(events, resolver)
                try:
                    request = await anext(source)
                except StopAsyncIteration:
                    return
                yield request
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()

    async def _dispatch_shielded(
        self, events: Sequence[Event], resolver: Resolver, isolate: bool = False
    ) -> None:
        """Dispatch ``events`` so that the caller's cancellation cannot cut them short: the handler's
        work is done and its events are facts, so when the caller is cancelled meanwhile (a consumer
        that closed the stream, a client that hung up, a deadline) they are finished first, then the
        cancellation propagates.

        The dispatch runs as a task of its own (so a timeout an event handler starts binds to that task,
        not to the caller's), started eagerly where Python allows: one that never suspends (no-op or
        CPU-only handlers) finishes at once, without the three loop iterations a scheduled task costs."""
        dispatcher = self._dispatcher
        if not dispatcher.wants(events):
            return
        task = start_eagerly(dispatcher.dispatch(events, resolver, isolate=isolate))
        if task is not None:
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.done():
                    await self._finish(task)
                raise

    async def _finish(self, task: asyncio.Task[None]) -> None:
        """Wait for a dispatch task to end whatever cancellations arrive meanwhile; report its failure
        (nobody else will), then re-raise a cancellation that arrived while waiting."""
        cancelled = False
        while not task.done():
            try:
                await asyncio.wait((task,))
            except asyncio.CancelledError:
                cancelled = True
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self._dispatcher.report(error, None, None)
        if cancelled:
            raise asyncio.CancelledError

    def _scope(self) -> contextlib.AbstractAsyncContextManager[Resolver]:
        if self.request_map._fallbacks or self.event_map._fallbacks:
            return _with_fallbacks(self.container, self._scoped)
        if self._scoped:
            return self.container.open_scope()  # type: ignore[attr-defined, no-any-return]
        return _no_scope(self.container)


@contextlib.asynccontextmanager
async def _no_scope(container: Resolver) -> AsyncIterator[Resolver]:
    yield container


@contextlib.asynccontextmanager
async def _with_fallbacks(container: Resolver, scoped: bool) -> AsyncIterator[Resolver]:
    """The scope's resolver, resolving fallback pairs (:mod:`cqrs.fallback`) to their runners."""
    from cqrs.fallback import FallbackResolver

    async with container.open_scope() if scoped else _no_scope(container) as resolver:  # type: ignore[attr-defined]
        yield FallbackResolver(resolver)


class RequestMediator(_Mediator):
    """Sends a request to its one handler and returns the response.

    Events the handler records are dispatched after ``handle`` returns and before ``send`` returns
    (python-cqrs behaviour), with follow-ups, under the mediator's settings. Middleware wraps the call.
    """

    async def send(self, request: Request | RequestStream[Any]) -> Any:
        """Run the handler bound to ``type(request)`` (or to a :class:`~cqrs.RequestStream`'s
        ``request_type``) and return its response."""
        handler_type = self._handler_type(request)
        if not self.middlewares:
            return await self._handle(request, handler_type)

        async def terminal(req: Request | RequestStream[Any]) -> Any:
            return await self._handle(req, self._handler_type(req))

        return await build_chain(self.middlewares, terminal)(request)

    async def _handle(self, request: Request | RequestStream[Any], handler_type: type[Any]) -> Any:
        async with self._scope() as resolver:
            handler = await resolver.resolve(handler_type)
            if isinstance(request, RequestStream):
                reading = self._requests(handler, request, resolver, self._dispatch_shielded)
                async with contextlib.aclosing(reading) as requests:
                    response = await handler.handle(requests)
            else:
                response = await handler.handle(request)
            events = take_events(handler)
            if events:
                await self._dispatch_shielded(events, resolver)
            return response


def __getattr__(name: str) -> Any:
    # python-cqrs 4.x imports both mediators from here; the streaming one lives in cqrs.streaming
    if name == "StreamingRequestMediator":
        from cqrs.streaming import StreamingRequestMediator

        return StreamingRequestMediator
    if name == "EventMediator":
        from cqrs.events.mediator import EventMediator

        return EventMediator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
