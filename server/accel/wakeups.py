"""Batching grpc's completion wake-ups: opt-in, since it wraps a private reader of grpc's.

grpc.aio's poller thread queues each finished core operation and then writes one byte to a socket;
grpc's reader on the loop reads one byte and handles every completion queued so far. This reader
reads all pending bytes but one before calling grpc's, so one wake-up serves every completion
queued until then. Nothing is lost: a completion is queued before its byte is written, so every
completion whose byte was read is in the queue grpc's reader empties; one queued later still has
its byte. When a look finds a single byte pending, grpc's own reader is put back, as grpc ships it,
for ``_QUIET_SECONDS``, and then looking starts again.

Several loops, in several threads, may share grpc's poller and so this socket: only one reader
looks at a time, and one that finds another looking reads one byte as grpc does.

Only grpc's own reader is wrapped (``PollerCompletionQueue._handle_events`` of grpc's Cython core,
on a socket, in a grpc no newer than ``_CHECKED_UP_TO``, the newest whose reader was checked to read
one byte and then empty the whole queue). Any other reader, or a newer grpc, is registered as given.
docs/accel.md says why this exists and how it was measured.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVarTuple

import grpc

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = ["BatchingSelectorLoop", "WakeupBatching"]

_Ts = TypeVarTuple("_Ts")

_GRPC_WAKEUP_READER = "PollerCompletionQueue._handle_events"
_GRPC_CORE_MODULE = "grpc._cython.cygrpc"
# the newest grpc whose wake-up reader was checked to read one byte, then empty the whole queue
_CHECKED_UP_TO = (1, 85)
# one look at a time, across every loop and thread sharing grpc's poller (see the module docstring)
_LOOKING = threading.Lock()
# more than the completions that queue up between two loop iterations; any more wait a turn
_PEEK_BYTES = 4096
# how long grpc's own reader serves after a look found one byte pending
_QUIET_SECONDS = 0.005


_AddReader: TypeAlias = Callable[..., None]


class WakeupBatching:
    """One loop's batched grpc wake-up readers; the loop routes ``add_reader`` and ``remove_reader``
    through it, and it registers with ``add_reader``, the loop's own (unwrapped) method."""

    def __init__(self, loop: asyncio.AbstractEventLoop, add_reader: _AddReader) -> None:
        self._loop = loop
        self._add_reader = add_reader
        self._batched: dict[int, _BatchedWakeups] = {}

    def add_reader(self, fileobj: object, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.forget(fileobj)
        if args or not isinstance(fileobj, socket.socket) or not _is_grpc_wakeup_reader(callback):
            self._add_reader(fileobj, callback, *args)
            return
        # grpc registers its reader without arguments
        wakeups = _BatchedWakeups(self._loop, self._add_reader, fileobj, callback)
        self._batched[fileobj.fileno()] = wakeups
        wakeups.look()

    def forget(self, fileobj: object) -> None:
        """Before ``fileobj``'s reader is removed or replaced: no quiet spell may put it back."""
        fd = fileobj if isinstance(fileobj, int) else getattr(fileobj, "fileno", lambda: -1)()
        wakeups = self._batched.pop(fd, None)
        if wakeups is None and fd == -1:  # a socket closed before its reader is removed
            for known, candidate in list(self._batched.items()):
                if candidate.wakes(fileobj):
                    wakeups = self._batched.pop(known)
                    break
        if wakeups is not None:
            wakeups.stop()


def _is_grpc_wakeup_reader(callback: object) -> bool:
    if not isinstance(callback, functools.partial):
        return False
    method = callback.func
    return (
        getattr(method, "__qualname__", None) == _GRPC_WAKEUP_READER
        and type(getattr(method, "__self__", None)).__module__ == _GRPC_CORE_MODULE
        and _grpc_version() <= _CHECKED_UP_TO
    )


def _grpc_version() -> tuple[int, int]:
    major, minor, *_ = grpc.__version__.split(".")
    return int(major), int(minor)


class _BatchedWakeups:
    """grpc's wake-up reader, run once per wake-up with all pending bytes but one already read,
    while completions come in batches; grpc's reader itself, registered as grpc does, while they
    come one at a time."""

    __slots__ = ("_add_reader", "_buffer", "_loop", "_quiet", "_reader", "_recv_into", "_socket")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        add_reader: _AddReader,
        wakeup_socket: socket.socket,
        reader: Callable[[], object],
    ) -> None:
        self._loop = loop
        self._add_reader = add_reader
        self._socket = wakeup_socket
        self._recv_into = wakeup_socket.recv_into
        self._reader = reader
        self._buffer = bytearray(_PEEK_BYTES)  # read into, not allocated per wake-up
        self._quiet: asyncio.TimerHandle | None = None

    def look(self) -> None:
        """Register this wrapper: each wake-up looks at what is pending."""
        self._quiet = None
        if self._socket.fileno() != -1:
            self._add_reader(self._socket, self)

    def wakes(self, fileobj: object) -> bool:
        return fileobj is self._socket

    def stop(self) -> None:
        if self._quiet is not None:
            self._quiet.cancel()
            self._quiet = None

    def __call__(self) -> None:
        if _LOOKING.acquire(blocking=False):
            try:
                if not self._read_all_but_one():
                    return
            finally:
                _LOOKING.release()
        try:  # noqa: SIM105 - no context manager object per wake-up
            self._reader()
        except BlockingIOError:
            pass  # the byte was taken by another loop's reader, which empties the queue after it

    def _read_all_but_one(self) -> bool:
        """Read every pending byte but the one grpc's reader reads (it fails on an empty socket);
        False when there was nothing to read. Finding one byte (or none: the peer closed), register
        grpc's own reader for a quiet spell instead of this wrapper."""
        try:
            pending = self._recv_into(self._buffer, _PEEK_BYTES, socket.MSG_PEEK)
        except BlockingIOError:
            return False  # each completion queued has its byte, so none is waiting
        except OSError:
            return True  # leave it to grpc's reader, which sees what it always saw
        if pending > 1:
            try:  # noqa: SIM105 - as above
                self._recv_into(self._buffer, pending - 1)
            except BlockingIOError:
                pass  # another loop's reader was quicker
        else:
            self._add_reader(self._socket, self._reader)  # one at a time: grpc's reader as it ships
            self._quiet = self._loop.call_later(_QUIET_SECONDS, self.look)
        return True


class BatchingSelectorLoop(asyncio.SelectorEventLoop):
    """asyncio's default loop with grpc's completion wake-ups batched."""

    def __init__(self) -> None:
        super().__init__()
        self._wakeup_batching = WakeupBatching(self, super().add_reader)

    def add_reader(self, fd: FileDescriptorLike, callback: Callable[[*_Ts], Any], *args: *_Ts) -> None:
        self._wakeup_batching.add_reader(fd, callback, args)

    def remove_reader(self, fd: FileDescriptorLike) -> bool:
        self._wakeup_batching.forget(fd)
        return super().remove_reader(fd)
