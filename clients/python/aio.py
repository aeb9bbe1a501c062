"""The asyncio client: ``async with AsyncFileClient(Connection(...)) as files: ...``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc

from clients.python.connection import Connection, Metadata, insecure_or_secure
from clients.python.models import FileEvent, FileInfo, FileServiceError, FileStatus, ProcessResult
from clients.python.resume import RESUME, Place, Resume, watch_query
from clients.python.uploads import CHUNK_BYTES, Content, Pieces, Progress
from demo.files.v1 import files_pb2, files_pb2_grpc

_DEFAULT: Any = object()


class AsyncFileClient:
    """Typed async calls of ``demo.files.v1.FileService``; every call takes ``timeout`` and ``metadata``.

    Failed calls raise :class:`FileServiceError` (status code, server reason, field violations).
    Breaking out of a stream (or cancelling the task reading it) cancels the call on the server.
    """

    def __init__(self, connection: Connection | str | None = None) -> None:
        if isinstance(connection, str):
            connection = Connection(target=connection)
        self.connection = connection or Connection()
        self._channel: grpc.aio.Channel = insecure_or_secure(self.connection, aio=True)
        self._stub: Any = files_pb2_grpc.FileServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> AsyncFileClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close(grace=None)

    def _kwargs(self, timeout: float | None, metadata: Metadata | Mapping[str, str] | None) -> dict[str, Any]:
        return {
            "timeout": self.connection.timeout if timeout is _DEFAULT else timeout,
            "metadata": self.connection.call_metadata(metadata),
        }

    async def upload(
        self,
        name: str,
        content: Content,
        *,
        progress: Progress | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        timeout: float | None = _DEFAULT,
        metadata: Metadata | None = None,
    ) -> FileInfo:
        """Store ``content`` (bytes or a binary file, of any size) streamed in pieces of ``chunk_bytes``.

        ``progress(sent, total)`` is called after each piece is sent (``total`` is None for a file
        whose size is unknown, such as a pipe). The deadline spans the whole upload: pass
        ``timeout=None`` for large files over slow links. Cancelling the task cancels the upload,
        and the server keeps nothing of it.
        """
        call = self._stub.UploadFileChunks(**self._kwargs(timeout, metadata))
        first_status = _FirstStatus(call)
        try:
            await self._send(call, name, Pieces(content, chunk_bytes), progress)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the call ended before or under a write: its status says why
        except BaseException:
            call.cancel()  # a failed read, a failing progress callback, a cancelled task
            raise
        try:
            reply = await call
        except grpc.aio.AioRpcError as error:
            raise FileServiceError.from_rpc_error(first_status.instead_of(error)) from None
        return FileInfo.from_proto(reply)

    @staticmethod
    async def _send(call: Any, name: str, pieces: Pieces, progress: Progress | None) -> None:
        await call.write(files_pb2.UploadFileChunk(name=name))
        while not call.done() and (piece := await pieces.aread()):
            await call.write(files_pb2.UploadFileChunk(data=piece))
            if progress is not None:
                progress(pieces.sent, pieces.total)
        await call.write(pieces.last())
        await call.done_writing()

    async def list_files(
        self, *, timeout: float | None = _DEFAULT, metadata: Metadata | None = None
    ) -> list[FileInfo]:
        try:
            reply = await self._stub.ListFiles(files_pb2.ListFilesQuery(), **self._kwargs(timeout, metadata))
        except grpc.RpcError as error:
            raise FileServiceError.from_rpc_error(error) from None
        return [FileInfo.from_proto(f) for f in reply.files]

    async def status(
        self, file_id: str, *, timeout: float | None = _DEFAULT, metadata: Metadata | None = None
    ) -> FileStatus:
        try:
            reply = await self._stub.GetFileStatus(
                files_pb2.GetFileStatusQuery(file_id=file_id), **self._kwargs(timeout, metadata)
            )
        except grpc.RpcError as error:
            raise FileServiceError.from_rpc_error(error) from None
        return FileStatus.from_proto(reply)

    async def process(
        self, file_ids: Sequence[str], *, timeout: float | None = None, metadata: Metadata | None = None
    ) -> AsyncIterator[ProcessResult]:
        """One result per id, in order, as each arrives."""
        call = self._stub.ProcessFiles(
            files_pb2.ProcessFilesCommand(file_ids=list(file_ids)), **self._kwargs(timeout, metadata)
        )
        try:
            async for message in call:
                yield ProcessResult.from_proto(message)
        except grpc.RpcError as error:
            raise FileServiceError.from_rpc_error(error) from None
        finally:
            call.cancel()  # no-op once the call has ended; stops the server's work when we leave early

    def watch(
        self,
        *,
        after_sequence: int | None = None,
        resume: Resume | None = RESUME,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> AsyncEventStream:
        """Events after ``after_sequence`` (None: from now on; 0: from the first event): ``async with
        client.watch() as events: async for event in events``. Entering waits until the server
        confirms the subscription, so nothing published after ``__aenter__`` returns is missed. With
        ``resume`` (the default) a drain, a lost worker or a drop for falling behind is bridged by
        reconnecting: no gap, no duplicate.
        """

        def open_call(after: int | None) -> Any:
            query = watch_query(after)
            return self._stub.WatchFileEvents(query, **self._kwargs(timeout, metadata))

        return AsyncEventStream(open_call, after_sequence, resume)


class _FirstStatus:
    """The first status a call was given, which grpc.aio may replace (grpc/grpc#36066, open in 1.85).

    When the server ends a client stream while a write is in flight (as the upload limit does), the
    failed write may overwrite the server's status with INTERNAL "Internal error from Core". grpc
    runs done callbacks each time it sets a status, so the first one is captured here.
    """

    def __init__(self, call: Any) -> None:
        self._first: grpc.aio.AioRpcError | None = None
        call.add_done_callback(self._capture)

    def _capture(self, call: Any) -> None:
        if self._first is not None:
            return
        # The status is set: these coroutines return without suspending, so they can be run here.
        code, details, trailers = _now(call.code()), _now(call.details()), _now(call.trailing_metadata())
        self._first = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details, None)

    def instead_of(self, error: grpc.aio.AioRpcError) -> grpc.aio.AioRpcError:
        """The server's status when ``error`` is grpc's stand-in for a write refused as the call ended."""
        replaced = error.code() is grpc.StatusCode.INTERNAL and error.details() == "Internal error from Core"
        return self._first if replaced and self._first is not None else error


def _now(coroutine: Coroutine[Any, Any, Any]) -> Any:
    try:
        coroutine.send(None)
    except StopIteration as returned:
        return returned.value
    coroutine.close()
    raise RuntimeError("the call's status is not set yet")


class AsyncEventStream:
    """An open WatchFileEvents call; ``cancel()`` (or leaving the ``async with``) ends it.

    ``last_sequence`` is the sequence of the last event yielded: what a later watch resumes after
    (``None`` until the server has said where a "from now on" watch starts).
    """

    def __init__(
        self, open_call: Callable[[int | None], Any], after_sequence: int | None, resume: Resume | None
    ) -> None:
        self._open = open_call
        self._place = Place(after_sequence, resume)
        self._cancelled = False
        self._call = open_call(after_sequence)

    @property
    def last_sequence(self) -> int | None:
        return self._place.last_sequence

    @property
    def subscribed(self) -> bool:
        """True while the server has confirmed the current call's subscription."""
        return self._place.subscribed

    async def __aenter__(self) -> AsyncEventStream:
        """Return once the server confirms the subscription, reconnecting as ``resume`` allows."""
        while True:
            try:
                headers = await self._call.initial_metadata()
            except grpc.RpcError as error:
                raise FileServiceError.from_rpc_error(error) from None
            if self._place.started(headers) or not self._call.done():
                return self
            failure = await self._failure()
            if failure is None:
                return self
            delay = self._place.reconnect(failure)
            if delay is None:
                raise failure
            await asyncio.sleep(delay)
            self._call = self._open(self._place.last_sequence)

    async def __aexit__(self, *exc_info: object) -> None:
        self.cancel()

    def cancel(self) -> None:
        self._cancelled = True
        self._call.cancel()

    async def _failure(self) -> FileServiceError | None:
        """The error the ended call carries (None: it ended OK or was cancelled)."""
        code = await self._call.code()
        if code is grpc.StatusCode.OK or code is grpc.StatusCode.CANCELLED:
            return None
        details, trailers = await self._call.details(), await self._call.trailing_metadata()
        return FileServiceError.from_rpc_error(
            grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details, None)
        )

    def __aiter__(self) -> AsyncIterator[FileEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[FileEvent]:
        while True:
            try:
                async for message in self._call:
                    event = FileEvent.from_proto(message)
                    if self._place.fresh(event):  # a replay may repeat what was seen
                        yield event
                return
            except grpc.RpcError as error:
                if self._cancelled or error.code() is grpc.StatusCode.CANCELLED:
                    return
                failure = FileServiceError.from_rpc_error(error)
                delay = self._place.reconnect(failure)
                if delay is None:
                    raise failure from None
            await asyncio.sleep(delay)
            if self._cancelled:
                return
            self._call = self._open(self._place.last_sequence)
            try:
                headers = await self._call.initial_metadata()
            except grpc.RpcError:
                continue  # the iteration above meets the same status
            self._place.started(headers)
