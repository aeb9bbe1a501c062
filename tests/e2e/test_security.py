"""``python -m server`` with mutual TLS and bearer tokens, called by every client: the Python SDK,
its CLI, buf curl and the Node.js client; a bad flag refuses to start; SIGHUP reloads."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from clients.python import AsyncFileClient, Connection, FileServiceError, TlsConfig
from tests.e2e.conftest import BUF, DEMO_APP, ROOT, ServerProcess, start_server
from tests.e2e.test_clients import NODE_DIR, _run
from tests.pki import Pki, needs_openssl

pytestmark = needs_openssl
TOKEN = "e2e-token-0123456789abcdef0123"


@pytest.fixture
async def secure_server(pki: Pki, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# e2e\n{TOKEN} e2e\n")
    (tmp_path / "token").write_text(TOKEN + "\n")
    server = await start_server(
        "--app", DEMO_APP, "--grace", "1", "--tls-cert", str(pki.server_pem), "--tls-key", str(pki.server_key),
        "--tls-client-ca", str(pki.ca_pem), "--auth-tokens-file", str(tokens),
    )  # fmt: skip
    try:
        yield server
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


def _tls(pki: Pki, client: bool = True) -> TlsConfig:
    if not client:
        return TlsConfig.from_files(pki.ca_pem)
    return TlsConfig.from_files(pki.ca_pem, pki.client_pem, pki.client_key)


async def test_python_sdk_with_mutual_tls_and_a_token(secure_server: ServerProcess, pki: Pki) -> None:
    address = secure_server.address
    async with AsyncFileClient(Connection(address, tls=_tls(pki), token=TOKEN, timeout=10)) as files:
        info = await files.upload("s.txt", b"secure\n")
        assert [r.status async for r in files.process([info.file_id])] == ["completed"]
    refusals = {
        "no token": Connection(address, tls=_tls(pki), timeout=10),
        "wrong token": Connection(address, tls=_tls(pki), token="x" * 20, timeout=10),
        "no client cert": Connection(address, tls=_tls(pki, client=False), token=TOKEN, timeout=10),
        "plaintext": Connection(address, token=TOKEN, timeout=10),
    }
    codes = {}
    for name, connection in refusals.items():
        async with AsyncFileClient(connection) as files:
            with pytest.raises(FileServiceError) as refused:
                await files.list_files()
            codes[name] = refused.value.code
    assert codes == {
        "no token": grpc.StatusCode.UNAUTHENTICATED,
        "wrong token": grpc.StatusCode.UNAUTHENTICATED,
        "no client cert": grpc.StatusCode.UNAVAILABLE,
        "plaintext": grpc.StatusCode.UNAVAILABLE,
    }
    assert repr(TOKEN) not in repr(refusals["no client cert"])  # the SDK keeps it out of reprs


async def test_cli_with_tls_flags_and_a_token_file(
    secure_server: ServerProcess, pki: Pki, tmp_path: Path
) -> None:
    tls = ["--tls-ca", str(pki.ca_pem), "--tls-cert", str(pki.client_pem), "--tls-key", str(pki.client_key)]
    base = [sys.executable, "-m", "clients.python", "--address", secure_server.address, *tls]
    code, out, err = await _run(*base, "--token-file", str(tmp_path / "token"), "list", "--json")
    assert code == 0 and out == "", err  # no files yet, and no error
    code, _, err = await _run(*base, "list")
    assert code == 1 and "UNAUTHENTICATED" in err


async def _buf(*args: str) -> tuple[int, str, str]:
    return await _run(str(BUF), "curl", "--protocol", "grpc", *args, timeout=20)


async def test_buf_curl_with_cacert_client_cert_and_bearer_header(
    secure_server: ServerProcess, pki: Pki
) -> None:
    url = f"https://{secure_server.address}"
    tls = ["--cacert", str(pki.ca_pem), "--cert", str(pki.client_pem), "--key", str(pki.client_key)]
    auth = ["-H", f"authorization: Bearer {TOKEN}"]
    code, out, err = await _buf(*tls, *auth, "-d", "{}", f"{url}/demo.files.v1.FileService/ListFiles")
    assert code == 0, err
    assert json.loads(out) == {}  # no files yet
    code, out, err = await _buf(*tls, "-d", "{}", f"{url}/grpc.health.v1.Health/Check")
    assert code == 0 and json.loads(out) == {"status": "SERVING"}, err  # health is open
    code, out, err = await _buf(*tls, "-d", "{}", f"{url}/demo.files.v1.FileService/ListFiles")
    assert code != 0 and "unauthenticated" in err.lower()
    code, out, err = await _buf(
        "--cacert", str(pki.ca_pem), *auth, "-d", "{}", f"{url}/grpc.health.v1.Health/Check"
    )
    assert code != 0  # no client certificate: the handshake fails


@pytest.mark.skipif(not (NODE_DIR / "node_modules").exists(), reason="run `make install`")
async def test_node_client_with_mutual_tls_and_a_token(
    secure_server: ServerProcess, pki: Pki, tmp_path: Path
) -> None:
    env = {"CQRS_GRPC_TLS_CA": str(pki.ca_pem), "CQRS_GRPC_TLS_CERT": str(pki.client_pem)}
    env["CQRS_GRPC_TLS_KEY"] = str(pki.client_key)
    node = ["node", str(NODE_DIR / "process.js"), "--address", secure_server.address]
    code, out, err = await _run(*node, "--token-file", str(tmp_path / "token"), "nope", env=env)
    assert code == 0, err
    assert json.loads(out)["status"] == "not_found"
    code, out, err = await _run(*node, "nope", env=env)
    assert code == 1 and "UNAUTHENTICATED" in err


async def test_sighup_reloads_certificate_and_tokens(secure_server: ServerProcess) -> None:
    secure_server.process.send_signal(signal.SIGHUP)
    async with asyncio.timeout(10):
        while not any("tokens reloaded" in line for line in secure_server.log):  # noqa: ASYNC110 - a log
            await asyncio.sleep(0.05)
    assert any("TLS certificate reloaded" in line for line in secure_server.log)
    assert secure_server.process.returncode is None
    assert await secure_server.terminate(timeout=5) == 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-cert", "nope.pem", "--tls-key", "nope.key"], "--tls-cert nope.pem: no such file"),
        (["--tls-key", "x.key"], "--tls-key was given without --tls-cert"),
        (["--reflection-requires-auth"], "--reflection-requires-auth needs --auth-tokens-file"),
    ],
)
async def test_bad_security_flags_refuse_to_start(flags: list[str], message: str) -> None:
    code, _, err = await _run(
        sys.executable, "-m", "server", "--app", DEMO_APP, "--address", "127.0.0.1:0", *flags, timeout=30
    )
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert ROOT.exists()
