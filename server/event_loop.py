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
look and cost what they cost before.

Only grpc's own reader is wrapped, recognised by what it is (a ``PollerCompletionQueue._handle_events``
callback on a socket); every other reader is registered as given. A grpc that changes how it wakes
the loop is simply no longer recognised and works as it ships.

``python -m server`` runs on this loop. To embed the server in your own program, pass
:func:`new_event_loop` as the loop factory: ``asyncio.run(main(), loop_factory=server.new_event_loop)``.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVarTuple, cast

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = ["new_event_loop"]

Ts = TypeVarTuple("Ts")

_GRPC_WAKEUP_READER = "PollerCompletionQueue._handle_events"
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
    fileobj: object, callback: Callable[[*Ts], object], args: tuple[*Ts]
) -> Callable[[*Ts], object]:
    """The callback to register for ``add_reader(fileobj, callback, *args)``: grpc's wake-up reader
    batched, anything else as it is."""
    if args or not isinstance(fileobj, socket.socket) or not _is_grpc_wakeup_reader(callback):
        return callback
    # grpc registers its reader without arguments (``args`` is empty), so Ts is empty here
    return cast("Callable[[*Ts], object]", _BatchedWakeups(fileobj, cast("Callable[[], object]", callback)))


def _is_grpc_wakeup_reader(callback: object) -> bool:
    return (
        isinstance(callback, functools.partial)
        and getattr(callback.func, "__qualname__", None) == _GRPC_WAKEUP_READER
    )


class _BatchedWakeups:
    """grpc's wake-up reader, called once for every byte pending when the loop wakes instead of
    once per byte.

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
        if self._unlooked:
            self._unlooked -= 1
            self._reader()
            return
        try:
            pending = self._recv_into(self._buffer, _PEEK_BYTES, socket.MSG_PEEK)
        except BlockingIOError:
            return  # woken with nothing to read: nothing was queued either
        except OSError:
            pending = 1  # leave it to grpc's reader, which sees what it always saw
        if pending > 1:
            # grpc's reader reads the last byte itself (and fails on an empty socket), so leave it one
            self._recv_into(self._buffer, pending - 1)
        else:
            self._unlooked = _TRUST_SINGLE
        self._reader()


class BatchingSelectorLoop(asyncio.SelectorEventLoop):
    """asyncio's default loop with grpc's completion wake-ups batched."""

    def add_reader(self, fd: FileDescriptorLike, callback: Callable[[*Ts], Any], *args: *Ts) -> None:
        super().add_reader(fd, batched_reader(fd, callback, args), *args)
