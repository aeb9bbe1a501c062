"""--app is required and is the only thing the CLI tells an app: a factory is called with no arguments."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from server.app import App
from server.cli import load_app, parse_args
from tests.server.sample import create_app as sample_app

seen: dict[str, Any] = {}

MISSING_APP = (
    "python -m server: error: --app (or CQRS_GRPC_APP) is required: module:attribute of the App "
    "to serve, e.g. --app mypackage.mymodule:create_app\n"
)


def _takes_everything(**options: Any) -> App:
    seen.update(options)
    return sample_app()


def _takes_data_dir(data_dir: str = "its own default") -> App:
    seen["data_dir"] = data_dir
    return sample_app()


async def _async_factory() -> App:
    return sample_app()


@pytest.fixture(autouse=True)
def factories(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("cli_factories")
    module.takes_everything = _takes_everything  # type: ignore[attr-defined]
    module.takes_data_dir = _takes_data_dir  # type: ignore[attr-defined]
    module.async_factory = _async_factory  # type: ignore[attr-defined]
    module.app = sample_app()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cli_factories", module)
    seen.clear()
    monkeypatch.delenv("CQRS_GRPC_APP", raising=False)


@pytest.mark.parametrize("app_env", [None, ""])
def test_without_app_the_cli_exits_2_with_one_line_naming_the_flag_and_the_variable(
    app_env: str | None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if app_env is not None:
        monkeypatch.setenv("CQRS_GRPC_APP", app_env)
    with pytest.raises(SystemExit) as exited:
        parse_args(["--address", "127.0.0.1:0"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == MISSING_APP


def test_the_app_comes_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_args(["--app", "pkg.mod:app"]).app == "pkg.mod:app"
    monkeypatch.setenv("CQRS_GRPC_APP", "pkg.env:app")
    assert parse_args([]).app == "pkg.env:app"
    assert parse_args(["--app", "pkg.flag:app"]).app == "pkg.flag:app"  # the flag wins


@pytest.mark.parametrize("flag", ["--data-dir", "--max-upload-bytes"])
def test_the_demo_flags_are_not_flags_of_the_generic_cli(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--app", "pkg.mod:app", flag, "7"])
    assert exited.value.code == 2
    assert f"unrecognized arguments: {flag} 7" in capsys.readouterr().err


async def test_a_factory_is_called_with_no_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CQRS_GRPC_DATA_DIR", "/srv/files")
    monkeypatch.setenv("CQRS_GRPC_MAX_UPLOAD_BYTES", "1024")
    assert isinstance(await load_app("cli_factories:takes_everything"), App)
    assert seen == {}
    await load_app("cli_factories:takes_data_dir")
    assert seen == {"data_dir": "its own default"}


async def test_an_app_an_async_factory_and_a_factory_all_load() -> None:
    for target in ("cli_factories:app", "cli_factories:async_factory", "cli_factories:takes_everything"):
        assert isinstance(await load_app(target), App)
