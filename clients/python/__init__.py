"""Python SDK of the demo file service: async and blocking clients returning typed results.

    from clients.python import AsyncFileClient, Connection

    async with AsyncFileClient(Connection("127.0.0.1:50051", timeout=10)) as files:
        info = await files.upload("notes.txt", b"hello\\n")
        async for result in files.process([info.file_id]):
            print(result.index, result.total, result.status, result.line_count)

It imports only the generated stubs (``demo.files.v1``), never the server. ``python -m clients.python``
is its command line (upload, list, process, watch).
"""

from clients.python.aio import AsyncEventStream, AsyncFileClient
from clients.python.connection import Connection, TlsConfig
from clients.python.models import FileEvent, FileInfo, FileServiceError, FileStatus, ProcessResult
from clients.python.resume import Resume
from clients.python.sync import EventStream, FileClient

__all__ = [
    "AsyncEventStream",
    "AsyncFileClient",
    "Connection",
    "EventStream",
    "FileClient",
    "FileEvent",
    "FileInfo",
    "FileServiceError",
    "FileStatus",
    "ProcessResult",
    "Resume",
    "TlsConfig",
]
