"""cqrs._eager.start_eagerly: its own task from the first step; no loop round trip when it never suspends (3.12+)."""

from __future__ import annotations

import asyncio
import contextvars
import sys

import pytest

from cqrs._eager import start_eagerly

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outer")
eager_only = pytest.mark.skipif(
    sys.version_info < (3, 12),
    reason="eager tasks exist from Python 3.12; 3.11 falls back to an ordinary task",
)


async def test_the_first_step_already_runs_as_the_new_task_not_as_the_caller() -> None:
    seen: list[object] = []

    async def work() -> None:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        seen.append(asyncio.current_task())

    caller = asyncio.current_task()
    task = start_eagerly(work())
    assert task is not None
    await task
    assert seen == [task, task] and caller not in seen


@eager_only
async def test_a_coroutine_that_never_suspends_finishes_inline_without_a_task() -> None:
    done: list[str] = []

    async def work() -> None:
        var.set("inner")
        done.append(var.get())

    tasks_before = len(asyncio.all_tasks())
    assert start_eagerly(work()) is None
    assert done == ["inner"]
    assert len(asyncio.all_tasks()) == tasks_before
    assert var.get() == "outer", "the coroutine runs in a copied context, like a task"


@eager_only
async def test_an_error_before_the_first_suspension_propagates_at_once() -> None:
    async def work() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        start_eagerly(work())


async def test_a_suspending_coroutine_goes_on_in_a_task_with_the_same_context() -> None:
    seen: list[str] = []
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def work() -> None:
        var.set("inner")
        await asyncio.sleep(0)  # a bare yield
        got = await gate  # a future
        seen.append(f"{var.get()}:{got}")
        raise KeyError("late")

    task = start_eagerly(work())
    assert task is not None
    assert not task.done()
    gate.set_result(7)
    with pytest.raises(KeyError):
        await task
    assert seen == ["inner:7"]
    assert var.get() == "outer"


async def test_cancelling_the_task_reaches_the_coroutine_where_it_waits() -> None:
    cleaned: list[str] = []

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # may still await while cleaning up
            cleaned.append("finally")

    task = start_eagerly(work())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]


async def test_shielding_the_task_keeps_it_running_when_the_awaiter_is_cancelled() -> None:
    finished = asyncio.Event()

    async def work() -> None:
        await asyncio.sleep(0.01)
        finished.set()

    task = start_eagerly(work())
    assert task is not None
    waiter = asyncio.ensure_future(asyncio.shield(task))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.wait_for(finished.wait(), 1)
    assert task.done() and task.exception() is None
