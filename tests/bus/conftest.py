"""A real nats-server with JetStream for each test: a free loopback port, its store in tmp_path.

``nats_server.restart()`` brings it back on the same port with the same store (what it stored survives).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cqrs.bus import BusConfig, NatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bus_config() -> BusConfig:
    return BusConfig(stream="TEST_EVENTS", prefix="test.events")
