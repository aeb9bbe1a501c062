"""The demo reads its own settings: FILES_DATA_DIR and FILES_MAX_UPLOAD_BYTES (parameters win)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from demo.files.v1 import files_pb2, files_pb2_grpc
from examples.files import create_app
from examples.files.app import UPLOAD_OVERHEAD_BYTES
from server.app import App
from server.cli import load_app
from server.testing import serve_for_test

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _no_demo_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FILES_DATA_DIR", "FILES_MAX_UPLOAD_BYTES"):
        monkeypatch.delenv(name, raising=False)


async def _upload(app: App, size: int) -> grpc.StatusCode:
    """Serve ``app`` (stopping it closes its store) and upload ``size`` bytes; the status."""
    async with serve_for_test(app) as served:
        stub = served.stub(files_pb2_grpc.FileServiceStub)
        try:
            await stub.UploadFile(files_pb2.UploadFileCommand(name="f.bin", content=b"x" * size))
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK


async def test_defaults_are_dot_data_and_64_mib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = create_app()
    assert app.settings.max_receive_message_bytes == 64 * MiB + UPLOAD_OVERHEAD_BYTES
    assert await _upload(app, 16) is grpc.StatusCode.OK
    assert (tmp_path / "data" / "demo.sqlite3").exists()


async def test_the_environment_sets_the_data_dir_and_the_upload_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FILES_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("FILES_MAX_UPLOAD_BYTES", "1024")
    # what `python -m server --app examples.files:create_app` does: call the factory with no arguments
    app = await load_app("examples.files:create_app")
    assert await _upload(app, 1024) is grpc.StatusCode.OK
    assert await _upload(app, 1025) is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (tmp_path / "from-env" / "demo.sqlite3").exists()
    assert not (tmp_path / "data").exists()


def test_a_worker_of_several_without_a_bus_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CQRS_GRPC_WORKER_INDEX", "0")  # what the supervisor of --workers 2 sets
    monkeypatch.delenv("CQRS_GRPC_NATS_URL", raising=False)  # no nats-server was found to start
    with pytest.raises(SystemExit, match="needs the event bus"):
        create_app(data_dir=tmp_path)


async def test_parameters_win_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FILES_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("FILES_MAX_UPLOAD_BYTES", "1024")
    app = create_app(data_dir=tmp_path / "given", max_upload_bytes=8 * MiB)
    assert app.settings.max_receive_message_bytes == 8 * MiB + UPLOAD_OVERHEAD_BYTES
    assert await _upload(app, 2048) is grpc.StatusCode.OK
    assert (tmp_path / "given" / "demo.sqlite3").exists()
    assert not (tmp_path / "from-env").exists()


@pytest.mark.parametrize("raw", ["lots", "1.5"])
def test_a_bad_upload_limit_in_the_environment_names_the_variable(
    raw: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FILES_MAX_UPLOAD_BYTES", raw)
    with pytest.raises(
        ValueError, match=f"FILES_MAX_UPLOAD_BYTES must be a whole number of bytes, got '{raw}'"
    ):
        create_app(data_dir=tmp_path)
