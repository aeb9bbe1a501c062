"""The SDK's TLS settings against a real TLS server on 127.0.0.1: server auth, then mutual TLS."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from clients.python import Connection, FileClient, FileServiceError, TlsConfig
from demo.files.v1 import files_pb2, files_pb2_grpc

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 'localhost' and a client certificate, all signed by the CA."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        cwd=d,
    )
    for name in ("server", "client"):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        (d / f"{name}.ext").write_text("subjectAltName=DNS:localhost\n")
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d,
        )  # fmt: skip
    return d


class Listing(files_pb2_grpc.FileServiceServicer):
    def ListFiles(
        self, request: files_pb2.ListFilesQuery, context: grpc.ServicerContext
    ) -> files_pb2.FileList:
        peer_cn = context.auth_context().get("x509_common_name", [b""])[0].decode()
        return files_pb2.FileList(
            files=[files_pb2.FileInfo(file_id="f_1", name=f"seen-by:{peer_cn or 'anonymous'}")]
        )


def _serve(pki: Path, *, require_client_cert: bool) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    files_pb2_grpc.add_FileServiceServicer_to_server(Listing(), server)
    credentials = grpc.ssl_server_credentials(
        [((pki / "server.key").read_bytes(), (pki / "server.pem").read_bytes())],
        root_certificates=(pki / "ca.pem").read_bytes(),
        require_client_auth=require_client_cert,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


@pytest.fixture
def tls_server(pki: Path) -> Iterator[str]:
    yield from _serve(pki, require_client_cert=False)


@pytest.fixture
def mtls_server(pki: Path) -> Iterator[str]:
    yield from _serve(pki, require_client_cert=True)


def test_tls_with_a_private_root_ca(tls_server: str, pki: Path) -> None:
    tls = TlsConfig.from_files(root_ca=pki / "ca.pem", server_name="localhost")
    with FileClient(Connection(tls_server, tls=tls, timeout=5)) as client:
        assert [f.name for f in client.list_files()] == ["seen-by:anonymous"]
    with (
        FileClient(Connection(tls_server, timeout=5)) as plaintext,
        pytest.raises(FileServiceError) as refused,
    ):
        plaintext.list_files()
    assert refused.value.code is grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_presents_the_client_certificate(mtls_server: str, pki: Path) -> None:
    tls = TlsConfig.from_files(
        pki / "ca.pem", pki / "client.pem", pki / "client.key", server_name="localhost"
    )
    with FileClient(Connection(mtls_server, tls=tls, timeout=5)) as client:
        assert [f.name for f in client.list_files()] == ["seen-by:client"]
    without_cert = TlsConfig.from_files(root_ca=pki / "ca.pem", server_name="localhost")
    with (
        FileClient(Connection(mtls_server, tls=without_cert, timeout=5)) as client,
        pytest.raises(FileServiceError),
    ):
        client.list_files()


def test_a_half_configured_client_cert_is_refused() -> None:
    with pytest.raises(ValueError, match="both client_cert and client_key"):
        TlsConfig(client_cert=b"cert")
