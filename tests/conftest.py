from __future__ import annotations

import pytest

from tests.pki import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Throw-away CA, server, client and foreign-CA certificates (tests/pki.py); needs openssl."""
    return make_pki(tmp_path_factory.mktemp("pki"))
