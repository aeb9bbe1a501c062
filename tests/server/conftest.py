from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sample.files.v1 import files_pb2_grpc

from server.testing import ServedApp, serve_for_test
from tests.server.sample import FileStatusStore, create_app


@pytest.fixture
def store() -> FileStatusStore:
    return FileStatusStore()


@pytest.fixture
async def demo(store: FileStatusStore) -> AsyncIterator[ServedApp]:
    async with serve_for_test(create_app(store)) as served:
        yield served


@pytest.fixture
def demo_stub(demo: ServedApp) -> files_pb2_grpc.FileServiceStub:
    return demo.stub(files_pb2_grpc.FileServiceStub)
