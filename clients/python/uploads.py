"""An upload's content as UploadFileChunks messages: the name, the content in pieces, its SHA-256."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from typing import BinaryIO

from demo.files.v1 import files_pb2

CHUNK_BYTES = 64 * 1024

Content = bytes | BinaryIO
"""What ``upload`` sends: bytes, or a binary file object read from its current position to its end."""

Progress = Callable[[int, "int | None"], None]
"""Called with (bytes sent so far, total bytes or None when unknown) after each piece is sent."""


class Pieces:
    """Reads ``content`` in pieces of ``chunk_bytes``, hashing them and counting what was read."""

    def __init__(self, content: Content, chunk_bytes: int = CHUNK_BYTES) -> None:
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        self._content = content
        self._chunk_bytes = chunk_bytes
        self._hasher = hashlib.sha256()
        self.sent = 0
        self.total = _total(content)

    def read(self) -> bytes:
        """The next piece, or b"" at the end (for a file object, a blocking read)."""
        if isinstance(self._content, bytes):
            piece = self._content[self.sent : self.sent + self._chunk_bytes]
        else:
            piece = self._content.read(self._chunk_bytes)
        self._hasher.update(piece)
        self.sent += len(piece)
        return piece

    async def aread(self) -> bytes:
        """``read`` for the event loop: a file is read in a worker thread."""
        if isinstance(self._content, bytes):
            return self.read()
        return await asyncio.to_thread(self.read)

    def last(self) -> files_pb2.UploadFileChunk:
        """The message saying the content is complete: its SHA-256."""
        return files_pb2.UploadFileChunk(sha256=self._hasher.hexdigest())


def _total(content: Content) -> int | None:
    if isinstance(content, bytes):
        return len(content)
    try:
        size = os.fstat(content.fileno()).st_size
        return size - content.tell() if size else None  # pipes and terminals report 0
    except (OSError, ValueError, AttributeError):
        return None
