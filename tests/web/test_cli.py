"""The HTTP port's flags and environment variables reach ServerSettings."""

from __future__ import annotations

import pytest

from server.cli import apply_settings, parse_args
from server.settings import ServerSettings


def test_flags_set_the_http_address_and_cors_origins() -> None:
    args = parse_args(["--app", "m:a", "--http-address", "127.0.0.1:8080", "--http-cors-origin", "https://a.example",
                       "--http-cors-origin", "https://b.example"])  # fmt: skip
    settings = apply_settings(ServerSettings(), args)
    assert settings.http_address == "127.0.0.1:8080"
    assert settings.http_cors_origins == ("https://a.example", "https://b.example")


def test_environment_variables_set_them_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CQRS_GRPC_HTTP_ADDRESS", "0.0.0.0:8081")
    monkeypatch.setenv("CQRS_GRPC_HTTP_CORS_ORIGIN", "https://a.example, https://b.example")
    settings = apply_settings(ServerSettings(), parse_args(["--app", "m:a"]))
    assert settings.http_address == "0.0.0.0:8081"
    assert settings.http_cors_origins == ("https://a.example", "https://b.example")
    assert apply_settings(
        ServerSettings(), parse_args(["--app", "m:a", "--http-cors-origin", "x"])
    ).http_cors_origins == ("x",)


def test_without_them_there_is_no_http_port() -> None:
    assert apply_settings(ServerSettings(), parse_args(["--app", "m:a"])).http_address is None
