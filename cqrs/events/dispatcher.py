"""The event dispatcher: runs the handlers of a batch of events, then their follow-ups, breadth-first.

One dispatcher belongs to one mediator and keeps no per-stream state: the per-stream concurrency limit
is a worker pool sized for each dispatch (a stream's dispatches never overlap, because item k's events
finish before item k+1 is produced), the optional global limit is one shared FIFO semaphore. Nothing
grows with the number of items: the only mutable state is the failure counter in :class:`DispatchStats`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cqrs import observe as _observe
from cqrs._eager import spawn
from cqrs.container import Resolver, _Scope
from cqrs.events.event import Event, NotificationEvent
from cqrs.events.map import EventMap
from cqrs.exceptions import EventDepthExceededError
from cqrs.message_brokers.protocol import message_of
from cqrs.recorder import take_events
from cqrs.settings import MediatorSettings

if TYPE_CHECKING:
    from cqrs.events.event_emitter import EventEmitter
    from cqrs.message_brokers.protocol import MessageBroker

__all__ = ["DispatchStats", "EventDispatcher"]

logger = logging.getLogger("cqrs.events")

_Chains = list[tuple[str, ...]] | None


class DispatchStats:
    """Counters a mediator exposes as ``mediator.stats`` (monotonic, never reset by the mediator)."""

    __slots__ = ("event_handler_failures",)

    def __init__(self) -> None:
        self.event_handler_failures = 0

    def __repr__(self) -> str:
        return f"DispatchStats(event_handler_failures={self.event_handler_failures})"


class EventDispatcher:
    """Dispatches events to their handlers under the mediator's settings."""

    def __init__(
        self,
        event_map: EventMap,
        settings: MediatorSettings,
        *,
        emitter: EventEmitter | None = None,
        broker: MessageBroker | None = None,
    ) -> None:
        self.event_map = event_map
        self.settings = settings
        # a user's python-cqrs emitter: every event goes to emitter.emit(), which returns its follow-ups
        self.emitter = emitter
        # a message_broker: notification events are published before their handlers run
        self.broker = broker
        self.stats = DispatchStats()
        self._get = event_map._handlers.get
        self._fail = settings.event_failure_policy == "fail"
        self._concurrent = settings.concurrent_event_handle_enable
        self._limit = settings.max_concurrent_event_handlers
        gmax = settings.global_max_concurrent_event_handlers
        self._global = asyncio.Semaphore(gmax) if gmax is not None else None

    def wants(self, events: Sequence[Event]) -> bool:
        """True if any of ``events`` has a handler (so a dispatch task is worth creating)."""
        if self.emitter is not None:
            return bool(events)
        if self.broker is not None and any(isinstance(e, NotificationEvent) for e in events):
            return True
        get = self._get
        for event in events:  # noqa: SIM110 - a plain loop: this runs once per streamed item
            if get(type(event)):
                return True
        return False

    async def dispatch(self, events: Sequence[Event], resolver: Resolver, *, isolate: bool = False) -> None:
        """Handle ``events`` and every follow-up, level by level, up to ``max_event_depth`` levels deep.

        With ``isolate=True`` failures are reported even under the ``"fail"`` policy (used while a stream
        is closing, where raising would mask the close or the cancellation).

        This runs once per streamed item that recorded events, so the sequential level is written out
        here rather than in a helper coroutine: each coroutine layer costs as much as a no-op handler.
        """
        fail = self._fail and not isolate
        if self.emitter is not None:
            return await self._emit_levels(self.emitter, events, fail, isolate)
        get = self._get
        gate = self._global
        # our own scopes build plain handler classes without a coroutine round trip
        instant = resolver.instant if isinstance(resolver, _Scope) else None
        observe = _observe.observer  # read once per dispatch: with none, handlers run bare
        level: Sequence[Event] = events
        chains: _Chains = None
        depth = 0
        while True:
            if self.broker is not None:
                await self._publish(self.broker, level, isolate)
            found: tuple[list[Event], list[tuple[str, ...]]] | None = None
            if self._concurrent:
                found = await self._run_concurrently(level, chains, resolver, fail, observe)
            else:
                for index, event in enumerate(level):
                    for handler_type in get(type(event), ()):
                        handler: Any
                        try:
                            if gate is None:
                                handler = instant(handler_type) if instant is not None else None
                                if handler is None:
                                    handler = await resolver.resolve(handler_type)
                                if observe is None:
                                    await handler.handle(event)
                                else:
                                    with observe.handling(handler_type, event):
                                        await handler.handle(event)
                            else:
                                async with gate:
                                    handler = await resolver.resolve(handler_type)
                                    await _handle(handler, handler_type, event, observe)
                        except Exception as exc:
                            if fail:
                                raise
                            self.report(exc, event, handler_type)
                            continue
                        recorded = take_events(handler)
                        if recorded:
                            found = _collect(found, recorded, event, chains, index)
            if found is None:
                return
            level, chains = found
            depth += 1
            if depth > self.settings.max_event_depth:
                error = EventDepthExceededError(chains[0], self.settings.max_event_depth)
                if fail:
                    raise error
                self.report(error, level[0], None)
                return

    async def _publish(self, broker: MessageBroker, level: Sequence[Event], closing: bool) -> None:
        """Publish the notification events of ``level``. A failure means the event did not leave the
        process, so it fails the send or stream under either policy (an item is not released as if
        its events were published); only a closing stream reports it instead."""
        for event in level:
            if isinstance(event, NotificationEvent):
                try:
                    await broker.send_message(message_of(event))
                except Exception as exc:
                    if not closing:
                        raise
                    self.report(exc, event, type(broker))

    async def _emit_levels(
        self, emitter: EventEmitter, events: Sequence[Event], fail: bool, closing: bool
    ) -> None:
        """Hand each event to ``emitter.emit`` level by level (concurrently, at most
        ``max_concurrent_event_handlers`` at once, when enabled), under the same policy and depth limit.

        The emitter isolates its handlers' failures itself; what ``emit`` raises means the event did not
        reach its broker (or anything), so it fails the send or stream under either policy: an item is
        not released as if its events were published. Only a closing stream reports it instead."""
        level: Sequence[Event] = events
        depth = 0
        limit = asyncio.Semaphore(self._limit)

        async def emit(event: Event) -> Sequence[Event]:
            async with limit:
                return await emitter.emit(event)

        while level:
            results: list[Sequence[Event] | BaseException] = []
            if self._concurrent and len(level) > 1:
                results = await asyncio.gather(*(emit(e) for e in level), return_exceptions=True)
            else:
                for event in level:
                    try:
                        results.append(await emitter.emit(event))
                    except Exception as exc:
                        if not closing:
                            raise
                        results.append(exc)
            found: list[Event] = []
            for event, result in zip(level, results, strict=True):
                if isinstance(result, BaseException):
                    if not closing or not isinstance(result, Exception):
                        raise result
                    self.report(result, event, type(emitter))
                elif result:
                    found.extend(result)
            level = found
            depth += 1
            if level and depth > self.settings.max_event_depth:
                error = EventDepthExceededError((type(level[0]).__qualname__,), self.settings.max_event_depth)
                if fail:
                    raise error
                self.report(error, level[0], None)
                return

    async def _run_concurrently(
        self,
        level: Sequence[Event],
        chains: _Chains,
        resolver: Resolver,
        fail: bool,
        observe: _observe.Observer | None,
    ) -> tuple[list[Event], list[tuple[str, ...]]] | None:
        get = self._get
        jobs = [(h, e, i) for i, e in enumerate(level) for h in get(type(e), ())]
        if not jobs:
            return None
        found: list[tuple[list[Event], list[tuple[str, ...]]] | None] = [None]

        async def run(handler_type: type[Any], event: Event, index: int) -> None:
            try:
                if self._global is None:
                    handler = await resolver.resolve(handler_type)
                    if observe is None:
                        await handler.handle(event)
                    else:
                        with observe.handling(handler_type, event):
                            await handler.handle(event)
                else:
                    async with self._global:
                        handler = await resolver.resolve(handler_type)
                        await _handle(handler, handler_type, event, observe)
            except Exception as exc:
                if fail:
                    raise
                self.report(exc, event, handler_type)
                return
            recorded = take_events(handler)
            if recorded:
                found[0] = _collect(found[0], recorded, event, chains, index)

        if len(jobs) == 1 and self._global is None:
            await run(*jobs[0])
            return found[0]
        queue = iter(jobs)

        async def worker() -> None:
            for job in queue:
                await run(*job)

        # Eager workers (3.12+): handlers that never suspend finish while the workers are created,
        # with no loop iteration per item. A worker that ends at once (not cancelled) has emptied
        # the queue or failed, so no further worker is needed.
        tasks: list[asyncio.Task[None]] = []
        try:
            for _ in range(min(self._limit, len(jobs))):
                task = spawn(worker())
                tasks.append(task)
                if task.done() and not task.cancelled():
                    break
            failed = _first_error(tasks)
            if failed is None and not all(task.done() for task in tasks):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                failed = _first_error(tasks)
        finally:
            await _cancel_all(tasks)
        if failed is not None:
            raise failed
        return found[0]

    def report(self, exc: BaseException, event: Event | None, handler_type: type[Any] | None) -> None:
        """Count, log (logger ``cqrs.events``, with traceback) and pass an isolated failure to the hook."""
        self.stats.event_handler_failures += 1
        name = str(getattr(handler_type, "__qualname__", handler_type)) if handler_type else "event dispatch"
        what = type(event).__qualname__ if event is not None else "a pending item's events"
        logger.error("event handler %s failed on %s", name, what, exc_info=exc)
        hook = self.settings.on_event_error
        if hook is not None and event is not None:
            try:
                hook(event, handler_type or type(None), exc)
            except Exception:
                logger.exception("on_event_error hook failed")


async def _handle(
    handler: Any, handler_type: type[Any], event: Event, observe: _observe.Observer | None
) -> None:
    """``handler.handle(event)``, watched by the installed observer if there is one."""
    if observe is None:
        await handler.handle(event)
    else:
        with observe.handling(handler_type, event):
            await handler.handle(event)


def _collect(
    found: tuple[list[Event], list[tuple[str, ...]]] | None,
    recorded: Sequence[Event],
    parent: Event,
    chains: _Chains,
    index: int,
) -> tuple[list[Event], list[tuple[str, ...]]]:
    if found is None:
        found = ([], [])
    chain = chains[index] if chains is not None else (type(parent).__qualname__,)
    for event in recorded:
        found[0].append(event)
        found[1].append((*chain, type(event).__qualname__))
    return found


def _first_error(tasks: list[asyncio.Task[None]]) -> BaseException | None:
    for task in tasks:
        if task.done() and not task.cancelled():
            error = task.exception()
            if error is not None:
                return error
    return None


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the unfinished tasks and wait for them, so none outlives the dispatch."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    cancelled = False
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True  # keep waiting: an orphaned task is worse than a late cancellation
        pending = [t for t in pending if not t.done()]
    for task in tasks:
        if not task.cancelled():
            task.exception()  # mark retrieved: the first error was raised or reported already
    if cancelled:
        raise asyncio.CancelledError
