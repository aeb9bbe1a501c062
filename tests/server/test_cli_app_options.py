"""--data-dir / --max-upload-bytes reach an app factory only when its signature takes them."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from server.app import App
from server.cli import factory_options, load_app, parse_args
from tests.server.sample import create_app as sample_app

seen: dict[str, Any] = {}


def _takes_data_dir(data_dir: str) -> App:
    seen["data_dir"] = data_dir
    return sample_app()


def _takes_everything(**options: Any) -> App:
    seen.update(options)
    return sample_app()


@pytest.fixture(autouse=True)
def factories(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("cli_factories")
    module.takes_data_dir = _takes_data_dir  # type: ignore[attr-defined]
    module.takes_everything = _takes_everything  # type: ignore[attr-defined]
    module.takes_nothing = sample_app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cli_factories", module)
    seen.clear()
    for name in ("CQRS_GRPC_DATA_DIR", "CQRS_GRPC_MAX_UPLOAD_BYTES"):
        monkeypatch.delenv(name, raising=False)


def test_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert factory_options(parse_args([])) == {"data_dir": "data"}
    monkeypatch.setenv("CQRS_GRPC_DATA_DIR", "/srv/files")
    monkeypatch.setenv("CQRS_GRPC_MAX_UPLOAD_BYTES", "1024")
    assert factory_options(parse_args([])) == {"data_dir": "/srv/files", "max_upload_bytes": 1024}
    args = parse_args(["--data-dir", "here", "--max-upload-bytes", "7"])
    assert factory_options(args) == {"data_dir": "here", "max_upload_bytes": 7}


async def test_a_factory_gets_the_options_it_names(tmp_path: Path) -> None:
    options = {"data_dir": str(tmp_path), "max_upload_bytes": 9}
    await load_app("cli_factories:takes_data_dir", options)
    assert seen == {"data_dir": str(tmp_path)}
    seen.clear()
    await load_app("cli_factories:takes_everything", options)
    assert seen == options
    assert isinstance(await load_app("cli_factories:takes_nothing", options), App)


async def test_the_demo_factory_uses_the_data_dir(tmp_path: Path) -> None:
    app = await load_app(
        "examples.files:create_app", {"data_dir": str(tmp_path / "d"), "max_upload_bytes": 8 << 20}
    )
    assert (tmp_path / "d" / "demo.sqlite3").exists()
    assert app.settings.max_receive_message_bytes > 8 << 20
