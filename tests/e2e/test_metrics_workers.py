"""``--workers 2 --metrics-address``: the supervisor's one ``/metrics`` shows every worker's RPCs."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sample.files.v1 import files_pb2, files_pb2_grpc

from tests.e2e.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

SERVING = re.compile(r"serving address=(?P<address>\S+:\d+)")
CONNECTIONS = 16  # each on a new connection, which the kernel spreads over the workers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def not_found_total(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "grpc_server_handled_total"
        and sample.labels.get("grpc_method") == "GetFileStatus"
        and sample.labels.get("grpc_code") == "NOT_FOUND"
    )


async def test_the_supervisor_serves_the_sum_of_every_workers_series(tmp_path: Path) -> None:
    metrics_port = free_port()
    store = tmp_path / "metrics"
    store.mkdir()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "--app",
        "tests.server.sample:create_app",
        "--workers",
        "2",
        "--address",
        "127.0.0.1:0",
        "--grace",
        "1",
        "--nats-url",
        "nats://127.0.0.1:1",  # the sample app has no broker: no bus is started or reached
        cwd=ROOT,
        env={
            **os.environ,
            "CQRS_GRPC_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
            "PROMETHEUS_MULTIPROC_DIR": str(store),
        },
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    log: list[str] = []
    try:

        async def two_serving() -> str:
            assert process.stderr is not None
            addresses = []
            while len(addresses) < 2:
                line = (await process.stderr.readline()).decode()
                if not line:
                    raise AssertionError("supervisor exited early:\n" + "".join(log))
                log.append(line)
                if match := SERVING.search(line):
                    addresses.append(match["address"])
            return addresses[0]

        address = await asyncio.wait_for(two_serving(), 30)
        for _ in range(CONNECTIONS):
            async with grpc.aio.insecure_channel(address) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await files_pb2_grpc.FileServiceStub(channel).GetFileStatus(
                        files_pb2.GetFileStatusQuery(file_id="nope"), timeout=5
                    )
                assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert await asyncio.to_thread(not_found_total, metrics_port) == CONNECTIONS
        # both workers write their series where the supervisor reads them
        writers = {path.stem.rsplit("_", 1)[1] for path in store.glob("counter_*.db")}
        assert len(writers) == 2, sorted(store.iterdir())
        assert all(" metrics=supervisor " in line for line in log if SERVING.search(line))

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
