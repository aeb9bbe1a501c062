"""``python -m server`` as a process, called with buf curl by reflection, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from demo.files.v1 import files_pb2, files_pb2_grpc
from tests.e2e.conftest import DEMO_APP, ROOT, ServerProcess, buf_curl, start_server


async def test_buf_curl_lists_calls_streams_and_checks_health(server_process: ServerProcess) -> None:
    url = f"http://{server_process.address}"
    code, out, err = await buf_curl("--list-methods", url)
    assert code == 0, err
    assert "demo.files.v1.FileService/ProcessFiles" in out.split()
    assert "grpc.health.v1.Health/Check" in out.split()

    code, out, err = await buf_curl(
        "-d", json.dumps({"fileIds": ["a", "b", "c"]}), f"{url}/demo.files.v1.FileService/ProcessFiles"
    )
    assert code == 0, err
    decoder = json.JSONDecoder()
    results, text = [], out.strip()
    while text:
        obj, end = decoder.raw_decode(text)
        results.append(obj)
        text = text[end:].strip()
    assert [r["fileId"] for r in results] == ["a", "b", "c"]
    assert [r["index"] for r in results] == [1, 2, 3]

    code, out, err = await buf_curl("-d", "{}", f"{url}/grpc.health.v1.Health/Check")
    assert code == 0, err
    assert json.loads(out) == {"status": "SERVING"}

    code, out, err = await buf_curl(
        "-d", json.dumps({"fileIds": []}), f"{url}/demo.files.v1.FileService/ProcessFiles"
    )
    assert code != 0 and "invalid_argument" in (out + err).lower()

    assert await server_process.terminate(timeout=2 + 2) == 0
    log = "".join(server_process.log)
    assert "status=OK messages=3" in log
    assert "Traceback" not in log


async def test_sigterm_drains_an_in_flight_stream_and_exits_zero_within_grace() -> None:
    server = await start_server("--app", DEMO_APP, "--grace", "1")
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest())
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            stub = files_pb2_grpc.FileServiceStub(channel)
            results = [r async for r in stub.ProcessFiles(files_pb2.ProcessFilesCommand(file_ids=["x"]))]
            assert len(results) == 1
            loop = asyncio.get_running_loop()
            began = loop.time()
            server.process.send_signal(15)
            update = await asyncio.wait_for(watch.read(), 2)
            assert update.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert await asyncio.wait_for(server.process.wait(), 1 + 2) == 0
            assert loop.time() - began < 1 + 2
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


async def test_without_app_python_m_server_exits_2_with_one_line_naming_the_flag_and_the_variable() -> None:
    env = {name: value for name, value in os.environ.items() if name != "CQRS_GRPC_APP"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "--address", "127.0.0.1:0",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert out == b""
    assert err.decode().splitlines() == [
        "python -m server: error: --app (or CQRS_GRPC_APP) is required: module:attribute of the App "
        "to serve, e.g. --app mypackage.mymodule:create_app"
    ]


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body.decode()


async def test_make_run_names_the_demo_app_and_serves_it_with_its_page() -> None:
    recipe = re.search(r"^run: .*\n\t(?P<command>.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert recipe is not None
    command = shlex.split(
        recipe["command"].replace("$(ADDRESS)", "127.0.0.1:0").replace("$(HTTP_ADDRESS)", "127.0.0.1:0")
    )
    assert command[:3] == ["$(PY)", "-m", "server"] and "--app" in command
    server = await start_server(*command[3:])
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            listed = await files_pb2_grpc.FileServiceStub(channel).ListFiles(files_pb2.ListFilesQuery())
            assert list(listed.files) == []
        http = [match[1] for line in server.log if (match := re.search(r"serving http=(\S+:\d+)", line))]
        assert http, "make run serves no HTTP port"
        assert '<script type="module" src="app.js">' in await asyncio.to_thread(fetch, f"http://{http[0]}/")
        assert await server.terminate(timeout=10 + 2) == 0
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()
