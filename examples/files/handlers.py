"""Request handlers of the demo: upload (whole or streamed in chunks), list, process (streaming), status,
watch (streaming)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import typing
import unicodedata
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import cqrs
from cqrs.requests.request_handler import StreamingRequestHandler
from examples.files.domain import (
    COMPLETED,
    FAILED,
    NOT_FOUND,
    FileEvent,
    FileInfo,
    FileList,
    FileProcessed,
    FileProcessedResult,
    FileStatus,
    FileUploaded,
    GetFileStatusQuery,
    ListFilesQuery,
    ProcessFilesCommand,
    UploadFileChunk,
    UploadFileCommand,
    WatchFileEventsQuery,
)
from examples.files.fanout import SubscriberFellBehind
from examples.files.processing import DEFAULT_CHUNK_BYTES, ReadChunk, read_chunk
from examples.files.store import BlobUpload, FileStore
from examples.files.watch import WatchSource
from server.context import maybe_current_rpc

MiB = 1024 * 1024
MAX_FILE_IDS = 10_000
MAX_FILE_ID_LENGTH = 256
MAX_NAME_LENGTH = 255
SUBSCRIBED_HEADER = "x-subscribed"
START_HEADER = "x-resume-after-sequence"  # where the live feed starts: resume after it
RESUME_KEY = "resume_after_sequence"
"""ErrorInfo metadata of a watch's UNAVAILABLE / RESOURCE_EXHAUSTED: the ``after_sequence`` to resume with."""
DEFAULT_MAX_UPLOAD_BYTES = 64 * MiB


@dataclasses.dataclass(frozen=True, slots=True)
class DemoSettings:
    """Limits of the demo service (``create_app`` reads ``max_upload_bytes`` from FILES_MAX_UPLOAD_BYTES)."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    read_chunk: ReadChunk = read_chunk


def validate_file_ids(file_ids: list[str]) -> None:
    """Refuse requests that name no file, too many, or ids no file can have."""
    if not file_ids:
        raise cqrs.ValidationError.for_field("file_ids", "must name at least one file")
    if len(file_ids) > MAX_FILE_IDS:
        raise cqrs.ValidationError.for_field(
            "file_ids", f"names {len(file_ids)} files; at most {MAX_FILE_IDS}"
        )
    violations = [
        cqrs.FieldViolation(f"file_ids[{index}]", description)
        for index, file_id in enumerate(file_ids)
        for description in _id_problems(file_id)
    ]
    if violations:
        raise cqrs.ValidationError("some file ids are invalid", violations=violations)


def _id_problems(file_id: str) -> list[str]:
    if not file_id:
        return ["must not be empty"]
    if len(file_id) > MAX_FILE_ID_LENGTH:
        return [f"is {len(file_id)} characters long; at most {MAX_FILE_ID_LENGTH}"]
    return []


def _validate_name(name: str) -> None:
    if not name.strip():
        raise cqrs.ValidationError.for_field("name", "must not be blank")
    if len(name) > MAX_NAME_LENGTH:
        raise cqrs.ValidationError.for_field("name", f"is {len(name)} characters long; at most 255")
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise cqrs.ValidationError.for_field("name", "must not contain control characters")


def _too_large(name: str, size: str, limit: int, received: int) -> cqrs.ResourceExhaustedError:
    return cqrs.ResourceExhaustedError(
        f"file {name!r} is {size} bytes; the upload limit is {limit} bytes",
        reason="UPLOAD_TOO_LARGE",
        metadata={"size_bytes": str(received), "limit_bytes": str(limit)},
    )


def _uploaded(info: FileInfo) -> FileUploaded:
    return FileUploaded(
        file_id=info.file_id, name=info.name, size=info.size, sha256=info.sha256, uploaded_at=info.uploaded_at
    )


class UploadFileCommandHandler(cqrs.RequestHandler[UploadFileCommand, FileInfo]):
    """Checks the size limit before anything touches the disk, stores, records FileUploaded."""

    def __init__(self, store: FileStore, settings: DemoSettings) -> None:
        self._store = store
        self._settings = settings

    async def handle(self, request: UploadFileCommand) -> FileInfo:
        _validate_name(request.name)
        limit, size = self._settings.max_upload_bytes, len(request.content)
        if size > limit:
            raise _too_large(request.name, str(size), limit, size)
        info = await self._store.save(request.name, request.content)
        self.add_event(_uploaded(info))
        return info


class UploadFileChunksHandler(cqrs.ClientStreamingRequestHandler[UploadFileChunk, FileInfo]):
    """UploadFile for content of any size: the name, the content in pieces, then its SHA-256.

    Each piece is checked against the limit as it arrives (``RESOURCE_EXHAUSTED`` the moment the limit
    is crossed; the rest is never read) and written to a temporary file while hashed. Only a stream
    that ends with the matching digest moves it into place and records FileUploaded; a cancel, a
    deadline, a bad message or the limit deletes it in ``finally``, which runs in the RPC's task.
    The digest message is what says "complete": grpc's asyncio server ends the request stream of a
    cancelled call just as it ends a finished one, and cancels the task only a moment later.
    """

    def __init__(self, store: FileStore, settings: DemoSettings) -> None:
        self._store = store
        self._settings = settings

    async def handle(self, requests: AsyncIterator[UploadFileChunk]) -> FileInfo:
        chunks = aiter(requests)
        first = await anext(chunks, None)
        if first is None or first.name is None:
            raise cqrs.ValidationError.for_field("name", "the first message must carry the file's name")
        name, limit = first.name, self._settings.max_upload_bytes
        _validate_name(name)
        upload = self._store.begin_upload()
        try:
            sha256 = await self._receive(name, chunks, upload, limit)
            if sha256 != upload.sha256:
                raise cqrs.ValidationError.for_field(
                    "sha256", f"the content received has the SHA-256 {upload.sha256}, not {sha256}"
                )
            info = await upload.commit(name)
        finally:
            upload.discard()
        self.add_event(_uploaded(info))
        return info

    async def _receive(
        self, name: str, chunks: AsyncIterator[UploadFileChunk], upload: BlobUpload, limit: int
    ) -> str:
        """Write every piece; the digest the last message gave."""
        async for chunk in chunks:
            if chunk.sha256 is not None:
                if await anext(chunks, None) is not None:
                    raise cqrs.ValidationError.for_field("sha256", "must come in the last message")
                return chunk.sha256
            if chunk.data is None:
                raise cqrs.ValidationError.for_field(
                    "data", "every message after the first must carry data or, last, the sha256"
                )
            if upload.size + len(chunk.data) > limit:
                raise _too_large(name, f"more than {limit}", limit, upload.size + len(chunk.data))
            await upload.write(chunk.data)
        raise cqrs.ValidationError.for_field(
            "sha256",
            "the stream ended without the last message giving the content's SHA-256; nothing was stored",
        )


class ListFilesQueryHandler(cqrs.RequestHandler[ListFilesQuery, FileList]):
    def __init__(self, store: FileStore) -> None:
        self._store = store

    async def handle(self, request: ListFilesQuery) -> FileList:
        return FileList(files=await self._store.list_files())


class ProcessFilesCommandHandler(StreamingRequestHandler[ProcessFilesCommand, FileProcessedResult]):
    """Digests each file in order: one result and one FileProcessed event per id, whatever its fate."""

    def __init__(self, store: FileStore, settings: DemoSettings) -> None:
        self._store = store
        self._settings = settings

    async def handle(self, request: ProcessFilesCommand) -> typing.AsyncIterator[FileProcessedResult]:
        validate_file_ids(request.file_ids)
        total = len(request.file_ids)
        for index, file_id in enumerate(request.file_ids, start=1):
            result = await self._process(file_id)
            result.index, result.total = index, total
            self.add_event(
                FileProcessed(
                    file_id=result.file_id,
                    status=result.status,
                    processed_at=result.processed_at,
                    name=result.name,
                    size=result.size,
                    sha256=result.sha256,
                    line_count=result.line_count,
                    error=result.error,
                )
            )
            yield result

    async def _process(self, file_id: str) -> FileProcessedResult:
        info = await self._store.get(file_id)
        if info is None:
            return FileProcessedResult(file_id=file_id, status=NOT_FOUND, processed_at=datetime.now(UTC))
        failed = FileProcessedResult(
            file_id=file_id, status=FAILED, processed_at=datetime.now(UTC), name=info.name
        )
        try:
            digest = await self._store.digest(
                info, chunk_bytes=self._settings.chunk_bytes, read=self._settings.read_chunk
            )
        except OSError:
            failed.error = "the stored content cannot be read"
            return failed
        if digest.sha256 != info.sha256 or digest.size != info.size:
            failed.error = "the stored content does not match its digest"
            return failed
        return FileProcessedResult(
            file_id=file_id,
            status=COMPLETED,
            processed_at=datetime.now(UTC),
            name=info.name,
            size=digest.size,
            sha256=digest.sha256,
            line_count=digest.line_count,
        )


class GetFileStatusQueryHandler(cqrs.RequestHandler[GetFileStatusQuery, FileStatus]):
    """Answers from the status the events recorded; an unknown file is NOT_FOUND."""

    def __init__(self, store: FileStore) -> None:
        self._store = store

    async def handle(self, request: GetFileStatusQuery) -> FileStatus:
        status = await self._store.status(request.file_id)
        if status is None:
            raise cqrs.NotFoundError(
                f"no file has the id {request.file_id!r}",
                reason="FILE_NOT_FOUND",
                metadata={"file_id": request.file_id[:MAX_FILE_ID_LENGTH]},
            )
        return status


class WatchFileEventsQueryHandler(StreamingRequestHandler[WatchFileEventsQuery, FileEvent]):
    """Streams the events after ``after_sequence`` (absent: from now on), then live ones, until the client
    leaves, the server drains, or the client falls behind.

    The feed is live before the response headers are sent (they carry ``x-subscribed``), so a client
    that waits for the headers misses nothing published afterwards. The drain's UNAVAILABLE names the
    sequence to resume after, in its message and as ErrorInfo metadata ``resume_after_sequence``.
    """

    def __init__(self, source: WatchSource) -> None:
        self._source = source

    async def handle(self, request: WatchFileEventsQuery) -> typing.AsyncIterator[FileEvent]:
        if request.after_sequence is not None and request.after_sequence < 0:
            raise cqrs.ValidationError.for_field("after_sequence", "must be 0 (from the first event) or more")
        rpc = maybe_current_rpc()
        draining = rpc.draining if rpc is not None else asyncio.Event()
        async with self._source.open(request.after_sequence) as feed:
            if rpc is not None:
                await rpc.send_initial_metadata(
                    (SUBSCRIBED_HEADER, "true"), (START_HEADER, str(feed.last_sequence))
                )
            drained = asyncio.ensure_future(draining.wait())
            try:
                async with contextlib.aclosing(feed.until(drained)) as events:
                    async for event in events:
                        yield event
            except SubscriberFellBehind as exc:
                raise cqrs.ResourceExhaustedError(
                    f"subscriber fell behind: {exc}; reconnect with after_sequence={feed.last_sequence}",
                    reason="SUBSCRIBER_FELL_BEHIND",
                    metadata={RESUME_KEY: str(feed.last_sequence)},
                ) from None
            finally:
                drained.cancel()
            resume = feed.last_sequence  # only the drain ends the feed
            raise cqrs.UnavailableError(
                f"server is shutting down; reconnect with after_sequence={resume}",
                reason="SERVER_DRAINING",
                metadata={RESUME_KEY: str(resume)},
            )
