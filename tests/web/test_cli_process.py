"""``python -m server --http-address HOST:0`` logs the HTTP port it bound, and serves the demo there."""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.conftest import start_server
from tests.web.conftest import CURL, run

pytestmark = pytest.mark.e2e


async def test_the_demo_on_a_free_http_port(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FILES_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    server = await start_server("--app", "examples.files:create_app", "--http-address", "127.0.0.1:0")
    try:
        match = re.search(r"serving http=(\S+:\d+) ", "".join(server.log))
        assert match and not match[1].endswith(":0"), server.log
        upload = (
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            '{"name": "a.txt", "content": "aGkK"}',
        )
        code, out, _ = await run(
            CURL, "-s", *upload, f"http://{match[1]}/demo.files.v1.FileService/UploadFile"
        )
        assert code == 0 and json.loads(out)["size"] == "3"
    finally:
        assert await server.terminate(30) == 0
