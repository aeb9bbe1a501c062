"""Nothing is retained across items or streams: memory stays flat over 100,000 items with events."""

from __future__ import annotations

import gc
import tracemalloc

import cqrs

from ._support import Numbers, Produced, streaming


class Quiet(cqrs.EventHandler[Produced]):
    async def handle(self, event: Produced) -> None:
        pass


async def _stream(mediator: cqrs.StreamingRequestMediator, count: int) -> int:
    n = 0
    async for _ in mediator.stream(Numbers(count=count)):
        n += 1
    return n


async def test_memory_stays_flat_over_100k_streamed_items_with_events() -> None:
    from . import _support

    class NullLog(_support.Log):
        def add(self, entry: object) -> None:
            pass

    NullLog()
    mediator = streaming(events=(Quiet,))
    await _stream(mediator, 2_000)  # warm-up: caches, code objects
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        assert await _stream(mediator, 100_000) == 100_000
        for _ in range(50):  # and many short streams
            await _stream(mediator, 10)
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024, after - before
    assert peak - before < 256 * 1024, peak - before
    assert mediator.stats.event_handler_failures == 0
