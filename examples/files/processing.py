"""Digest a stored file (size, SHA-256, line count) in chunks, off the event loop.

Each chunk is read and hashed in a worker thread (``asyncio.to_thread``), one chunk per hop, so a
1 GiB file costs the event loop only a thousand short wake-ups and other streams keep flowing;
hashlib releases the GIL on large buffers, so hashing overlaps with the loop's own work too. A
cancelled stream stops between chunks instead of reading the rest of the file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterable, Callable
from pathlib import Path
from typing import BinaryIO

MiB = 1024 * 1024
DEFAULT_CHUNK_BYTES = 1 * MiB

ReadChunk = Callable[[BinaryIO, int], bytes]
"""Reads up to ``size`` bytes from a file; called in a worker thread (tests inject slow ones)."""


def read_chunk(file: BinaryIO, size: int) -> bytes:
    return file.read(size)


@dataclasses.dataclass(frozen=True, slots=True)
class Digest:
    size: int
    sha256: str
    line_count: int


@dataclasses.dataclass(slots=True)
class _Progress:
    hasher: hashlib._Hash
    size: int = 0
    newlines: int = 0
    last_byte: int = -1


def _step(file: BinaryIO, chunk_bytes: int, progress: _Progress, read: ReadChunk) -> bool:
    """Read, hash and count one chunk (in a worker thread); False at end of file."""
    chunk = read(file, chunk_bytes)
    if not chunk:
        return False
    progress.hasher.update(chunk)
    progress.size += len(chunk)
    progress.newlines += chunk.count(b"\n")
    progress.last_byte = chunk[-1]
    return True


async def digest_file(
    path: Path, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, read: ReadChunk = read_chunk
) -> Digest:
    """Size, SHA-256 and line count of ``path``; a last line without a newline counts as a line."""
    file = await asyncio.to_thread(path.open, "rb")
    try:
        progress = _Progress(hashlib.sha256())
        while await asyncio.to_thread(_step, file, chunk_bytes, progress, read):
            pass
    finally:
        await asyncio.to_thread(file.close)
    trailing = 1 if progress.size and progress.last_byte != ord("\n") else 0
    return Digest(progress.size, progress.hasher.hexdigest(), progress.newlines + trailing)


async def digest_chunks(chunks: AsyncIterable[bytes]) -> Digest:
    """What :func:`digest_file` says, of content that arrives in pieces (from a database, say)."""
    progress = _Progress(hashlib.sha256())
    async for chunk in chunks:
        if chunk:
            progress.hasher.update(chunk)
            progress.size += len(chunk)
            progress.newlines += chunk.count(b"\n")
            progress.last_byte = chunk[-1]
    trailing = 1 if progress.size and progress.last_byte != ord("\n") else 0
    return Digest(progress.size, progress.hasher.hexdigest(), progress.newlines + trailing)
