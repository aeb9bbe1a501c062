"""The event loop the server runs on: uvloop when installed, with grpc's completion wake-ups batched.

Why batch: grpc.aio hands every finished core operation (each message written is one) to the event
loop through a socketpair. Its poller thread queues the completion and writes one byte; grpc's reader
on the loop reads back one byte and then handles every completion queued so far. So N completions
cost N loop iterations, each a poll, a callback and a ``recv`` system call, although the first
already handled most of them. With 40 concurrent streams that was one wake-up per message: 40,000
``recvfrom`` and 40,000 ``epoll_pwait`` calls for 40,000 messages (strace, 2026-11-26).

This loop reads all pending bytes but one before calling grpc's reader, so one wake-up serves every
completion queued until then (~1,200 wake-ups for the same 40,000 messages), and the loop spends
that time on the streams instead (BENCHMARKS.md). Nothing is lost: a completion is queued before its
byte is written, so every completion whose byte was read is already in the queue grpc's reader
empties; one queued later still has its byte, and its own wake-up. Looking at what is pending costs
a system call, so where completions come one at a time (a single stream) most wake-ups skip the
look and cost what they cost before; a burst after such a quiet spell waits a few wake-ups for the
next look.

grpc lets several loops, in several threads, share its poller and so this socket, each with a reader
of its own. Two looks at once could each leave the other's last byte unread, and a completion with
it; so only one reader looks at a time, and one that finds another looking reads one byte as grpc
does. A reader that takes a byte always empties the queue after it, so that cannot strand anything.

Only grpc's own reader is wrapped: a ``PollerCompletionQueue._handle_events`` callback of grpc's
Cython core on a socket, in a grpc whose reader was checked to read one byte and then empty the
whole queue (1.60 to ``_CHECKED_UP_TO``; tests/server/test_event_loop.py runs the real one). Any
other reader, or a newer grpc until it is checked, is registered as given and works as it ships.

``python -m server`` runs on this loop. To embed the server in your own program, make your loop with
:func:`new_event_loop`: ``with asyncio.Runner(loop_factory=server.new_event_loop) as runner: ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVarTuple, cast

import grpc

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = ["new_event_loop"]

_Ts = TypeVarTuple("_Ts")

_GRPC_WAKEUP_READER = "PollerCompletionQueue._handle_events"
_GRPC_CORE_MODULE = "grpc._cython.cygrpc"
# the newest grpc whose wake-up reader was checked to read one byte, then empty the whole queue
_CHECKED_UP_TO = (1, 85)
# one look at a time, across every loop and thread sharing grpc's poller (see the module docstring)
_LOOKING = threading.Lock()
# more than the completions that queue up between two loop iterations; any more wait a turn
_PEEK_BYTES = 4096
# wake-ups passed straight to grpc's reader after a look found one byte pending
_TRUST_SINGLE = 16


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop for serving: uvloop when installed, the default loop otherwise; either way
    with grpc's completion wake-ups batched (see the module's docstring)."""
    try:
        from server._uvloop import BatchingUvLoop
    except ImportError:  # uvloop is the optional "fast" extra
        return BatchingSelectorLoop()
    return BatchingUvLoop()


def batched_reader(
    fileobj: object, callback: Callable[[*_Ts], object], args: tuple[*_Ts]
) -> Callable[[*_Ts], object]:
    """The callback to register for ``add_reader(fileobj, callback, *args)``: grpc's wake-up reader
    batched, anything else as it is."""
    if args or not isinstance(fileobj, socket.socket) or not _is_grpc_wakeup_reader(callback):
        return callback
    # grpc registers its reader without arguments (``args`` is empty), so _Ts is empty here
    return cast("Callable[[*_Ts], object]", _BatchedWakeups(fileobj, cast("Callable[[], object]", callback)))


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
    instead of once per byte.

    Finding out what is pending costs a system call of its own, which only pays when completions
    come in batches. When a look finds a single byte (one stream, or a quiet server), the next
    ``_TRUST_SINGLE`` wake-ups go straight to grpc's reader, as grpc ships, before looking again.
    """

    __slots__ = ("_buffer", "_reader", "_recv_into", "_unlooked")

    def __init__(self, wakeup_socket: socket.socket, reader: Callable[[], object]) -> None:
        self._recv_into = wakeup_socket.recv_into
        self._reader = reader
        self._buffer = bytearray(_PEEK_BYTES)  # read into, not allocated per wake-up
        self._unlooked = 0  # wake-ups left to pass straight on

    def __call__(self) -> None:
        if self._unlooked or not _LOOKING.acquire(blocking=False):
            self._unlooked = max(self._unlooked - 1, 0)  # as grpc ships: one byte, then the queue
        else:
            try:
                if not self._read_all_but_one():
                    return
            finally:
                _LOOKING.release()
        with contextlib.suppress(BlockingIOError):
            # the byte was taken by another loop's reader, which empties the queue after it
            self._reader()

    def _read_all_but_one(self) -> bool:
        """Read every pending byte but the one grpc's reader reads (it fails on an empty socket);
        False when there was nothing to read."""
        try:
            pending = self._recv_into(self._buffer, _PEEK_BYTES, socket.MSG_PEEK)
        except BlockingIOError:
            return False  # each completion queued has its byte, so none is waiting
        except OSError:
            return True  # leave it to grpc's reader, which sees what it always saw
        if pending > 1:
            with contextlib.suppress(BlockingIOError):  # another loop's reader was quicker
                self._recv_into(self._buffer, pending - 1)
        else:
            self._unlooked = _TRUST_SINGLE
        return True


class BatchingSelectorLoop(asyncio.SelectorEventLoop):
    """asyncio's default loop with grpc's completion wake-ups batched."""

    def add_reader(self, fd: FileDescriptorLike, callback: Callable[[*_Ts], Any], *args: *_Ts) -> None:
        super().add_reader(fd, batched_reader(fd, callback, args), *args)
