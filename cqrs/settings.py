"""The mediator's settings: when events run, how many at once, what a failure or a close does.

Defaults are chosen so that nothing recorded is silently lost and no stream waits for another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from cqrs.events.event import Event

__all__ = ["EventErrorHook", "EventFailurePolicy", "EventTiming", "MediatorSettings", "OnClose"]

EventTiming = Literal["before_send", "with_send"]
EventFailurePolicy = Literal["isolate", "fail"]
OnClose = Literal["complete", "cancel"]
EventErrorHook = Callable[["Event", type[Any], BaseException], None]
"""Called as ``hook(event, handler_class, exception)`` for each isolated event-handler failure."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MediatorSettings:
    """How a mediator dispatches the events its handlers record.

    ``event_timing``
        ``"before_send"`` (default, as in python-cqrs): an item is released only after its events are
        handled, so a consumer holding item k can rely on k's effects.
        ``"with_send"`` (opt-in): the item is released at once and its events run while the consumer
        takes it; they still finish before the handler is resumed, so item k's events precede item
        k+1, but a reader may see item k before its effects are there.
    ``concurrent_event_handle_enable`` / ``max_concurrent_event_handlers``
        Run the handlers of one item's events one after another (``False``, default), or concurrently,
        at most ``max_concurrent_event_handlers`` at once **per stream**. One after another means inline
        in the consumer's task under ``on_close="cancel"``, and in one task per item the consumer's
        cancellation cannot interrupt under ``on_close="complete"``.
    ``global_max_concurrent_event_handlers``
        Optional cap shared by all streams of the mediator (a FIFO semaphore). Keep it above the
        per-stream limit so one busy stream cannot take every slot.
    ``event_failure_policy``
        ``"isolate"`` (default): log on logger ``cqrs.events``, count in ``mediator.stats``, call
        ``on_event_error``, go on. ``"fail"``: the stream (or send) raises the error; sibling event tasks
        are cancelled and awaited.
    ``on_close``
        When the consumer closes or cancels a stream while events already recorded are pending or
        running (inline or in a task, in any ``event_timing``): ``"complete"`` (default) finishes them
        (shielded) before ``aclose()`` returns or the cancellation propagates; ``"cancel"`` cancels and
        awaits them. Either way no event task outlives ``aclose()``.
    ``max_event_depth``
        How many levels of follow-up events are dispatched before
        :class:`~cqrs.exceptions.EventDepthExceededError` (subject to the failure policy).
    """

    event_timing: EventTiming = "before_send"
    concurrent_event_handle_enable: bool = False
    max_concurrent_event_handlers: int = 10
    global_max_concurrent_event_handlers: int | None = None
    event_failure_policy: EventFailurePolicy = "isolate"
    on_close: OnClose = "complete"
    max_event_depth: int = 8
    on_event_error: EventErrorHook | None = None

    def __post_init__(self) -> None:
        _one_of("event_timing", self.event_timing, ("before_send", "with_send"))
        _one_of("event_failure_policy", self.event_failure_policy, ("isolate", "fail"))
        _one_of("on_close", self.on_close, ("complete", "cancel"))
        if self.max_concurrent_event_handlers < 1:
            raise ValueError("max_concurrent_event_handlers must be >= 1")
        gmax = self.global_max_concurrent_event_handlers
        if gmax is not None and gmax < 1:
            raise ValueError("global_max_concurrent_event_handlers must be >= 1 or None")
        if self.max_event_depth < 0:
            raise ValueError("max_event_depth must be >= 0")


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
