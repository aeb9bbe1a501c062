"""``python -m server`` serves on uvloop when it is installed, and on nothing of grpc's own."""

from __future__ import annotations

import uvloop  # installed here (the "fast" extra)

from server import cli


def test_the_cli_serves_on_plain_uvloop() -> None:
    with cli._event_loop() as runner:
        assert type(runner.get_loop()) is uvloop.Loop
