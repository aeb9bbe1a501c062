"""Test the App the way clients see it: a real server on a free loopback port, a real channel.

    async with serve_for_test(app) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        results = [r async for r in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["a"]))]

Like starlette's TestClient or grpclib's ChannelFor, but over real HTTP/2, so flow control,
deadlines and cancellation behave as in production.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

import grpc

from server.app import App, RunningServer

StubT = TypeVar("StubT")


class ServedApp:
    """A running test server and an open channel to it."""

    def __init__(self, running: RunningServer, channel: grpc.aio.Channel) -> None:
        self.running = running
        self.channel = channel

    @property
    def address(self) -> str:
        return self.running.address

    def stub(self, stub_cls: type[StubT] | Any) -> StubT:
        """A generated ``*Stub`` bound to the channel."""
        stub: StubT = stub_cls(self.channel)  # type: ignore[call-arg]
        return stub


@contextlib.asynccontextmanager
async def serve_for_test(
    app: App,
    *,
    host: str = "127.0.0.1",
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> AsyncIterator[ServedApp]:
    """Serve ``app`` on ``host`` with a free port until the block ends, then stop it.

    For an app served with TLS pass the client's ``credentials``
    (``grpc.ssl_channel_credentials(ca_pem, client_key, client_cert)``).
    """
    async with app.serve(f"{host}:0") as running:
        if credentials is None:
            channel = grpc.aio.insecure_channel(running.address, options=list(options))
        else:
            channel = grpc.aio.secure_channel(running.address, credentials, options=list(options))
        async with channel:
            yield ServedApp(running, channel)
