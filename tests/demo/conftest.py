"""The demo served in-process on 127.0.0.1:0 over a fresh data directory."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from demo.files.v1 import files_pb2, files_pb2_grpc
from examples.files import Demo, build_demo
from server.testing import ServedApp, serve_for_test


@dataclasses.dataclass
class Served:
    demo: Demo
    served: ServedApp
    stub: files_pb2_grpc.FileServiceStub
    data_dir: Path

    async def upload(self, name: str, content: bytes) -> files_pb2.FileInfo:
        return await self.stub.UploadFile(files_pb2.UploadFileCommand(name=name, content=content))

    async def process(self, *file_ids: str) -> list[files_pb2.FileProcessedResult]:
        return [r async for r in self.stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=file_ids))]


ServeDemo = Callable[..., Any]


@pytest.fixture
async def serve_demo(tmp_path: Path) -> AsyncIterator[ServeDemo]:
    """``async with serve_demo(**build_demo_kwargs) as served``; stores are closed at the end."""
    demos: list[Demo] = []

    @contextlib.asynccontextmanager
    async def serve(**kwargs: Any) -> AsyncIterator[Served]:
        data_dir = kwargs.pop("data_dir", tmp_path / "data")
        demo = build_demo(data_dir, **kwargs)
        demos.append(demo)
        async with serve_for_test(demo.app) as served:
            yield Served(demo, served, served.stub(files_pb2_grpc.FileServiceStub), Path(data_dir))

    yield serve
    for demo in demos:
        demo.store.close()


@pytest.fixture
async def served(serve_demo: ServeDemo) -> AsyncIterator[Served]:
    async with serve_demo(max_upload_bytes=64 * 1024) as served:
        yield served
