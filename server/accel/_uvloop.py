"""uvloop with grpc's completion wake-ups batched (``server.accel.wakeups``).

A module of its own because uvloop is optional: importing this fails with ImportError without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVarTuple

import uvloop

from server.accel.wakeups import WakeupBatching

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

_Ts = TypeVarTuple("_Ts")


class BatchingUvLoop(uvloop.Loop):
    """uvloop's loop with grpc's completion wake-ups batched."""

    def __init__(self) -> None:
        super().__init__()
        self._wakeup_batching = WakeupBatching(self, super().add_reader)

    def add_reader(self, fd: FileDescriptorLike, callback: Callable[[*_Ts], Any], *args: *_Ts) -> None:
        self._wakeup_batching.add_reader(fd, callback, args)

    def remove_reader(self, fd: FileDescriptorLike) -> None:  # type: ignore[override]  # as uvloop does
        self._wakeup_batching.forget(fd)
        super().remove_reader(fd)
