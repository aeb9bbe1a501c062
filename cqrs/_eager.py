"""Start a coroutine in a task that runs its first step at once (an eager task where Python has them).

The streaming mediator shields each item's event dispatch from the consumer's cancellation by running
it in a task. Most dispatches (no-op or CPU-only event handlers) never suspend; a task scheduled the
ordinary way costs three event-loop iterations per item for them. Python 3.12's eager tasks run the
first step synchronously *as the new task* (``current_task()`` is the task, so ``asyncio.timeout`` and
friends bind to it) and finish without touching the loop when the coroutine never suspends.

On Python 3.11 there is no correct way to do that from outside asyncio (stepping the coroutine inline
would make it run as the consumer's task until its first await, so a timeout it starts there would
cancel the consumer), so it falls back to an ordinary task: correct, just slower.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine
from typing import Any

__all__ = ["spawn", "start_eagerly"]

_EAGER = sys.version_info >= (3, 12)


def spawn(coro: Coroutine[Any, Any, None], context: contextvars.Context | None = None) -> asyncio.Task[None]:
    """A task for ``coro`` whose first step has already run where Python allows (3.12+), else scheduled."""
    loop = asyncio.get_running_loop()
    if not _EAGER:
        return loop.create_task(coro, context=context)
    return asyncio.Task(coro, loop=loop, context=context, eager_start=True)  # type: ignore[call-arg,unused-ignore]


def start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` in its own task, in a copy of the current context.

    Returns None when it finished during its eager first step (an exception it raised propagates from
    here), else the task that carries it on.
    """
    task = spawn(coro, contextvars.copy_context())
    if task.done():
        task.result()
        return None
    return task
