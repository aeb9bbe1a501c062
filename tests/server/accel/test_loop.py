"""``python -m server`` serves on uvloop when it is installed (unless extensions are off)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop  # installed here (the "fast" extra)

from server import accel, cli


def test_the_cli_serves_on_plain_uvloop() -> None:
    with cli._event_loop() as runner:
        assert type(runner.get_loop()) is uvloop.Loop


def test_with_extensions_off_the_cli_serves_on_asyncios_own_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "NO_EXTENSIONS", True)  # as CQRS_GRPC_NO_EXTENSIONS=1
    with cli._event_loop() as runner:
        loop = runner.get_loop()
        assert not isinstance(loop, uvloop.Loop) and isinstance(loop, asyncio.BaseEventLoop)
