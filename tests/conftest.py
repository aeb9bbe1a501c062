from __future__ import annotations

import os

import pytest

# tests start processes (servers, nats-server, h2load, node) while their grpc channels are busy:
# grpc's fork handlers would run in the child before its exec and can abort it
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from tests.pki import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Throw-away CA, server, client and foreign-CA certificates (tests/pki.py); needs openssl."""
    return make_pki(tmp_path_factory.mktemp("pki"))
