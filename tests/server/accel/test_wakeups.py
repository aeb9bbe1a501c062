"""The opt-in loop batches grpc's completion wake-ups (``server.accel.wakeups``); off by default.

grpc's reader is stood in for by ``PollerCompletionQueue`` below, which keeps grpc's contract: the
poller queues a completion and then writes one byte; the reader reads one byte (failing on an empty
socket) and then handles every completion queued. The real grpc runs on the loop at the end.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import socket
import threading
from collections.abc import Callable, Iterator

import grpc
import pytest
from sample.files.v1 import files_pb2, files_pb2_grpc

import server
from server import ServerSettings, accel, cli
from server.accel import wakeups as batching
from server.accel.wakeups import BatchingSelectorLoop
from server.testing import serve_for_test
from tests.server.sample import create_app

batching_loop = functools.partial(server.new_event_loop, batch_grpc_wakeups=True)
LOOPS: list[Callable[[], asyncio.AbstractEventLoop]] = [batching_loop, BatchingSelectorLoop]


class PollerCompletionQueue:
    """grpc's completion queue as its loop reader sees it (named, and placed, as grpc's)."""

    def __init__(self) -> None:
        self.read_socket, self._write_socket = socket.socketpair()
        self.read_socket.setblocking(False)
        self._queue: collections.deque[int] = collections.deque()
        self._lock = threading.Lock()
        self.handled: list[int] = []
        self.reader_calls = 0
        self.all_handled: asyncio.Future[None] | None = None
        self.expected = 0

    def complete(self, completion: int) -> None:
        """The poller thread's side: queue, then wake the loop with one byte."""
        with self._lock:
            self._queue.append(completion)
        self._write_socket.send(b"1")

    def _handle_events(self, loop: object) -> None:
        self.reader_calls += 1
        self.read_socket.recv(1)
        while True:
            with self._lock:
                if not self._queue:
                    break
                completion = self._queue.popleft()
            self.handled.append(completion)
        if len(self.handled) >= self.expected and self.all_handled and not self.all_handled.done():
            self.all_handled.set_result(None)

    def close(self) -> None:
        self.read_socket.close()
        self._write_socket.close()


PollerCompletionQueue.__module__ = "grpc._cython.cygrpc"  # the detection looks at both


@pytest.fixture
def queue() -> Iterator[PollerCompletionQueue]:
    completion_queue = PollerCompletionQueue()
    yield completion_queue
    completion_queue.close()


def run_reader(loop: asyncio.AbstractEventLoop, queue: PollerCompletionQueue, expected: int) -> None:
    async def until_handled() -> None:
        queue.expected = expected
        queue.all_handled = loop.create_future()
        loop.add_reader(queue.read_socket, functools.partial(queue._handle_events, loop))
        try:
            await asyncio.wait_for(queue.all_handled, timeout=10)
        finally:
            loop.remove_reader(queue.read_socket)

    loop.run_until_complete(until_handled())


@pytest.mark.parametrize("make_loop", LOOPS, ids=["serving", "selector"])
def test_one_wakeup_handles_every_completion_already_queued(
    make_loop: Callable[[], asyncio.AbstractEventLoop], queue: PollerCompletionQueue
) -> None:
    for completion in range(50):
        queue.complete(completion)
    loop = make_loop()
    try:
        run_reader(loop, queue, expected=50)
    finally:
        loop.close()
    assert queue.handled == list(range(50))
    assert queue.reader_calls == 1  # as grpc ships: 50 calls, one per byte
    with pytest.raises(BlockingIOError):
        queue.read_socket.recv(1)  # every wake-up byte was consumed


@pytest.mark.parametrize("make_loop", LOOPS, ids=["serving", "selector"])
def test_no_completion_is_lost_while_the_poller_keeps_writing(
    make_loop: Callable[[], asyncio.AbstractEventLoop], queue: PollerCompletionQueue
) -> None:
    total = 3000

    def poller() -> None:
        for completion in range(total):
            queue.complete(completion)
            if completion % 97 == 0:
                threading.Event().wait(0.0005)  # let the loop catch up now and then

    thread = threading.Thread(target=poller)
    loop = make_loop()
    try:
        thread.start()
        run_reader(loop, queue, expected=total)
    finally:
        thread.join(timeout=10)
        loop.close()
    assert queue.handled == list(range(total))


async def until_handled(queue: PollerCompletionQueue, count: int) -> None:
    queue.expected = count
    queue.all_handled = asyncio.get_running_loop().create_future()
    if len(queue.handled) < count:
        await asyncio.wait_for(queue.all_handled, timeout=10)


class Registered:
    """Stands in for a loop's own ``add_reader``: what was registered for the wake-up socket."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[..., object]] = []

    def __call__(self, fileobj: object, callback: Callable[..., object], *args: object) -> None:
        self.callbacks.append(callback)


def wakeups_for(queue: PollerCompletionQueue, view: socket.socket | None = None) -> batching._BatchedWakeups:
    loop = asyncio.new_event_loop()
    loop.close()  # only its call_later is used, and only by a look that finds one byte
    return batching._BatchedWakeups(
        loop, Registered(), view or queue.read_socket, functools.partial(queue._handle_events, None)
    )


@pytest.mark.parametrize("make_loop", LOOPS, ids=["serving", "selector"])
def test_single_completions_are_left_to_grpcs_reader_for_a_quiet_spell(
    make_loop: Callable[[], asyncio.AbstractEventLoop],
    queue: PollerCompletionQueue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batching, "_QUIET_SECONDS", 30.0)  # the test ends the spell itself
    looks: list[int] = []

    class Looked(socket.socket):
        def recv_into(self, buffer: bytearray, nbytes: int = 0, flags: int = 0) -> int:  # type: ignore[override]
            if flags & socket.MSG_PEEK:
                looks.append(len(queue.handled))
            return super().recv_into(buffer, nbytes, flags)

    looked = Looked(fileno=queue.read_socket.fileno())

    async def scenario() -> batching._BatchedWakeups:
        loop = asyncio.get_running_loop()
        loop.add_reader(looked, functools.partial(queue._handle_events, loop))
        wakeups = loop._wakeup_batching._batched[looked.fileno()]  # type: ignore[attr-defined]
        for completion in range(10):  # one completion per wake-up, as with a single stream
            queue.complete(completion)
            await until_handled(queue, completion + 1)
        assert looks == [0]  # the first wake-up looked, found one byte, and put grpc's reader back
        assert queue.reader_calls == 10
        quiet = wakeups._quiet
        assert quiet is not None and quiet.when() - loop.time() > 20  # looking again in _QUIET_SECONDS

        quiet.cancel()
        wakeups.look()  # what the timer does when the quiet spell is over
        for completion in range(10, 40):  # a burst: one wake-up takes it all
            queue.complete(completion)
        await until_handled(queue, 40)
        assert looks == [0, 10]
        assert queue.reader_calls == 11
        loop.remove_reader(looked)
        return wakeups

    try:
        with asyncio.Runner(loop_factory=make_loop) as runner:
            runner.run(scenario())
    finally:
        looked.detach()
    assert queue.handled == list(range(40))


@pytest.mark.parametrize("make_loop", LOOPS, ids=["serving", "selector"])
@pytest.mark.parametrize("how", ["removed", "removed after close", "registered again"])
def test_a_quiet_spell_never_puts_back_a_reader_grpc_removed_or_replaced(
    make_loop: Callable[[], asyncio.AbstractEventLoop], how: str, queue: PollerCompletionQueue
) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        grpc_reader = functools.partial(queue._handle_events, loop)
        fd = queue.read_socket.fileno()
        loop.add_reader(queue.read_socket, grpc_reader)
        wakeups = loop._wakeup_batching._batched[fd]  # type: ignore[attr-defined]
        queue.complete(0)
        await until_handled(queue, 1)
        quiet = wakeups._quiet
        assert quiet is not None  # one byte: grpc's reader serves, and looking resumes later
        if how == "registered again":  # grpc binding the loop anew
            loop.add_reader(queue.read_socket, grpc_reader)
        else:  # grpc unbinding the loop, possibly after closing its socket
            if how == "removed after close":
                queue.read_socket.close()
            loop.remove_reader(queue.read_socket)
        assert quiet.cancelled()
        assert loop._wakeup_batching._batched.get(fd) is not wakeups  # type: ignore[attr-defined]
        if how == "registered again":
            queue.complete(1)
            await until_handled(queue, 2)
            loop.remove_reader(queue.read_socket)

    with asyncio.Runner(loop_factory=make_loop) as runner:
        runner.run(scenario())


def test_a_wakeup_with_nothing_to_read_leaves_grpc_alone(queue: PollerCompletionQueue) -> None:
    wakeups_for(queue)()  # grpc's own reader would raise BlockingIOError here
    assert queue.reader_calls == 0


def test_a_reader_finding_another_loop_looking_reads_as_grpc_does(queue: PollerCompletionQueue) -> None:
    """Two loops in two threads share grpc's poller socket, each with its reader: while one looks,
    the other must not (two looks could each leave the other's last byte unread, and completions with
    it), and neither may fail on the byte the other took."""
    looking, go_on = threading.Event(), threading.Event()
    looks: list[str] = []

    class HeldLook(socket.socket):
        def recv_into(self, buffer: bytearray, nbytes: int = 0, flags: int = 0) -> int:  # type: ignore[override]
            got = super().recv_into(buffer, nbytes, flags)
            if flags & socket.MSG_PEEK:
                looks.append(threading.current_thread().name)
                looking.set()
                go_on.wait(timeout=10)
            return got

    views = [HeldLook(fileno=queue.read_socket.fileno()) for _ in range(2)]
    first, second = (wakeups_for(queue, view) for view in views)
    errors: list[BaseException] = []

    def wake(wakeups: batching._BatchedWakeups) -> None:
        try:
            wakeups()
        except BaseException as exc:  # reported by the assertions below
            errors.append(exc)

    try:
        for completion in range(5):
            queue.complete(completion)
        looker = threading.Thread(target=wake, args=(first,), name="looker")
        looker.start()
        assert looking.wait(timeout=10)
        wake(second)  # meanwhile, the other loop wakes: one byte and the queue, as grpc ships
        go_on.set()
        looker.join(timeout=10)
    finally:
        go_on.set()
        for view in views:
            view.detach()
    assert looks == ["looker"]
    assert errors == []
    assert queue.handled == list(range(5))
    with pytest.raises(BlockingIOError):
        queue.read_socket.recv(1)


def test_only_grpcs_wakeup_reader_is_wrapped(
    queue: PollerCompletionQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    def registered(fileobj: object, callback: Callable[..., object], args: tuple[object, ...]) -> object:
        added = Registered()
        loop = asyncio.new_event_loop()
        try:
            batching.WakeupBatching(loop, added).add_reader(fileobj, callback, args)
        finally:
            loop.close()
        (callback_registered,) = added.callbacks
        return callback_registered

    grpc_reader = functools.partial(queue._handle_events, None)
    assert isinstance(registered(queue.read_socket, grpc_reader, ()), batching._BatchedWakeups)

    def other(*args: object) -> None: ...

    class Elsewhere(PollerCompletionQueue):  # the same name and method outside grpc's core
        __qualname__ = "PollerCompletionQueue"
        __module__ = "someone.else"

    elsewhere = Elsewhere()
    elsewhere.close()
    left_alone: list[tuple[object, Callable[..., object], tuple[object, ...]]] = [
        (queue.read_socket, other, ()),  # a reader of another kind
        (queue.read_socket, functools.partial(other, None), ()),
        (queue.read_socket, functools.partial(elsewhere._handle_events, None), ()),
        (queue.read_socket.fileno(), grpc_reader, ()),  # not a socket object
        (queue.read_socket, grpc_reader, (1,)),  # registered with arguments
    ]
    for fileobj, callback, args in left_alone:
        assert registered(fileobj, callback, args) is callback

    # a grpc newer than the one checked is served as it ships until its reader is checked
    newer = (batching._CHECKED_UP_TO[0], batching._CHECKED_UP_TO[1] + 1)
    monkeypatch.setattr(batching, "_grpc_version", lambda: newer)
    assert registered(queue.read_socket, grpc_reader, ()) is grpc_reader


def test_the_cli_serves_on_the_batching_loop_when_asked() -> None:
    from server.accel._uvloop import BatchingUvLoop  # uvloop is installed here (the "fast" extra)

    args = cli.parse_args(["--app", "x:y", "--batch-grpc-wakeups"])
    assert args.batch_grpc_wakeups is True
    with cli._event_loop(batch_grpc_wakeups=args.batch_grpc_wakeups) as runner:
        assert isinstance(runner.get_loop(), BatchingUvLoop)
        assert accel.batches_grpc_wakeups(runner.get_loop())
    assert cli.apply_settings(ServerSettings(), args).batch_grpc_wakeups


def test_the_environment_variable_asks_for_batching_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CQRS_GRPC_BATCH_WAKEUPS", "1")
    assert cli.parse_args(["--app", "x:y"]).batch_grpc_wakeups is True


def test_by_default_the_cli_serves_on_plain_uvloop_and_leaves_grpc_alone() -> None:
    import uvloop

    assert not ServerSettings().batch_grpc_wakeups
    assert cli.parse_args(["--app", "x:y"]).batch_grpc_wakeups is None
    with cli._event_loop() as runner:
        assert type(runner.get_loop()) is uvloop.Loop
        assert not accel.batches_grpc_wakeups(runner.get_loop())


def test_grpc_streams_run_on_the_batching_loop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wrapped: list[object] = []
    wakeups = batching._BatchedWakeups

    class Recorded(wakeups):  # type: ignore[misc, valid-type]
        __slots__ = ()

        def __init__(self, *args: object) -> None:
            super().__init__(*args)
            wrapped.append(self)

    monkeypatch.setattr(batching, "_BatchedWakeups", Recorded)
    ids = [f"f{n}" for n in range(200)]

    async def stream_concurrently() -> list[list[int]]:
        async with serve_for_test(create_app()) as served:
            stub: files_pb2_grpc.FileServiceStub = served.stub(files_pb2_grpc.FileServiceStub)

            async def one() -> list[int]:
                call = stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=ids), timeout=30)
                return [result.index async for result in call]

            return await asyncio.gather(*(one() for _ in range(10)))

    with (
        caplog.at_level(logging.ERROR, logger="asyncio"),
        asyncio.Runner(loop_factory=batching_loop) as runner,
    ):
        results = runner.run(stream_concurrently())
    assert results == [list(range(1, 201))] * 10
    assert [record.getMessage() for record in caplog.records if record.name == "asyncio"] == []
    # grpc bound this loop, and its wake-up reader was the one wrapped: if this grpc is newer than
    # the one checked, check its reader (server/accel/wakeups.py) and raise _CHECKED_UP_TO
    assert len(wrapped) == 1, f"grpc {grpc.__version__}: its wake-up reader was not recognised"


async def test_a_setting_the_loop_cannot_honour_is_reported_with_the_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app()
    app.settings = ServerSettings(batch_grpc_wakeups=True)  # on pytest's loop, which does not batch
    with caplog.at_level(logging.WARNING, logger="server"):
        async with serve_for_test(app):
            pass
    assert any("--batch-grpc-wakeups" in record.getMessage() for record in caplog.records)
