"""The blocking client: ``with FileClient(Connection(...)) as files: ...`` (threads, scripts, notebooks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc

from clients.python.connection import Connection, Metadata, insecure_or_secure
from clients.python.models import FileEvent, FileInfo, FileServiceError, FileStatus, ProcessResult
from clients.python.resume import RESUME, Place, Resume, watch_query
from clients.python.uploads import CHUNK_BYTES, Content, Pieces, Progress
from demo.files.v1 import files_pb2, files_pb2_grpc

_DEFAULT: Any = object()


class FileClient:
    """The same calls as :class:`AsyncFileClient`, blocking; streams are plain iterators.

    Closing a stream iterator early (``break`` out of the ``for``, or ``.close()``) cancels the call.
    """

    def __init__(self, connection: Connection | str | None = None) -> None:
        if isinstance(connection, str):
            connection = Connection(target=connection)
        self.connection = connection or Connection()
        self._channel: grpc.Channel = insecure_or_secure(self.connection, aio=False)
        self._stub: Any = files_pb2_grpc.FileServiceStub(self._channel)  # type: ignore[no-untyped-call]

    def __enter__(self) -> FileClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _kwargs(self, timeout: float | None, metadata: Metadata | Mapping[str, str] | None) -> dict[str, Any]:
        return {
            "timeout": self.connection.timeout if timeout is _DEFAULT else timeout,
            "metadata": self.connection.call_metadata(metadata),
        }

    def upload(
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

        ``progress(sent, total)`` is called after each piece is sent, from the thread grpc sends
        them from. The deadline spans the whole upload: pass ``timeout=None`` for large files over
        slow links.
        """
        pieces = Pieces(content, chunk_bytes)
        failed: list[BaseException] = []

        def messages() -> Iterator[files_pb2.UploadFileChunk]:
            try:
                yield files_pb2.UploadFileChunk(name=name)
                while piece := pieces.read():
                    yield files_pb2.UploadFileChunk(data=piece)
                    if progress is not None:
                        progress(pieces.sent, pieces.total)
                yield pieces.last()
            except Exception as error:  # grpc would log it and cancel the call: keep it for the caller
                failed.append(error)
                raise

        try:
            reply = self._stub.UploadFileChunks(messages(), **self._kwargs(timeout, metadata))
        except grpc.RpcError as error:
            if failed:
                raise failed[0] from None
            raise FileServiceError.from_rpc_error(error) from None
        return FileInfo.from_proto(reply)

    def list_files(
        self, *, timeout: float | None = _DEFAULT, metadata: Metadata | None = None
    ) -> list[FileInfo]:
        try:
            reply = self._stub.ListFiles(files_pb2.ListFilesQuery(), **self._kwargs(timeout, metadata))
        except grpc.RpcError as error:
            raise FileServiceError.from_rpc_error(error) from None
        return [FileInfo.from_proto(f) for f in reply.files]

    def status(
        self, file_id: str, *, timeout: float | None = _DEFAULT, metadata: Metadata | None = None
    ) -> FileStatus:
        try:
            reply = self._stub.GetFileStatus(
                files_pb2.GetFileStatusQuery(file_id=file_id), **self._kwargs(timeout, metadata)
            )
        except grpc.RpcError as error:
            raise FileServiceError.from_rpc_error(error) from None
        return FileStatus.from_proto(reply)

    def process(
        self, file_ids: Sequence[str], *, timeout: float | None = None, metadata: Metadata | None = None
    ) -> Iterator[ProcessResult]:
        """One result per id, in order, as each arrives."""
        call = self._stub.ProcessFiles(
            files_pb2.ProcessFilesCommand(file_ids=list(file_ids)), **self._kwargs(timeout, metadata)
        )
        try:
            for message in call:
                yield ProcessResult.from_proto(message)
        except grpc.RpcError as error:
            raise FileServiceError.from_rpc_error(error) from None
        finally:
            call.cancel()

    def watch(
        self,
        *,
        after_sequence: int | None = None,
        resume: Resume | None = RESUME,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> EventStream:
        """Events after ``after_sequence`` (None: from now on; 0: from the first event): ``with
        client.watch() as events: for event in events``; entering waits until the server confirms the
        subscription. With ``resume`` (the default) a drain, a lost worker or a drop for falling
        behind is bridged by reconnecting: no gap, no duplicate."""

        def open_call(after: int | None) -> Any:
            query = watch_query(after)
            return self._stub.WatchFileEvents(query, **self._kwargs(timeout, metadata))

        return EventStream(open_call, after_sequence, resume)


class EventStream:
    """An open WatchFileEvents call; ``cancel()`` (another thread may call it) ends the iteration.

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

    def __enter__(self) -> EventStream:
        """Return once the server confirms the subscription, reconnecting as ``resume`` allows."""
        while True:
            try:
                headers = self._call.initial_metadata()
            except grpc.RpcError as error:
                raise FileServiceError.from_rpc_error(error) from None
            if self._place.started(headers) or not self._call.done():
                return self
            if self._call.code() in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
                return self
            failure = FileServiceError.from_rpc_error(self._call)
            delay = self._place.reconnect(failure)
            if delay is None:
                raise failure from None
            time.sleep(delay)
            self._call = self._open(self._place.last_sequence)

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()

    def cancel(self) -> None:
        self._cancelled = True
        self._call.cancel()

    def __iter__(self) -> Iterator[FileEvent]:
        while True:
            try:
                for message in self._call:
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
            time.sleep(delay)
            if self._cancelled:
                return
            self._call = self._open(self._place.last_sequence)
            if self._cancelled:  # cancel() from another thread hit the call just replaced
                self._call.cancel()
                return
            self._place.started(self._call.initial_metadata())
