"""The SDK's TLS settings against a real TLS server on 127.0.0.1: server auth, then mutual TLS."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from clients.python import Connection, FileClient, FileServiceError, TlsConfig
from demo.files.v1 import files_pb2, files_pb2_grpc
from tests.pki import Pki, needs_openssl

pytestmark = needs_openssl


class Listing(files_pb2_grpc.FileServiceServicer):
    def ListFiles(
        self, request: files_pb2.ListFilesQuery, context: grpc.ServicerContext
    ) -> files_pb2.FileList:
        peer_cn = context.auth_context().get("x509_common_name", [b""])[0].decode()
        return files_pb2.FileList(
            files=[files_pb2.FileInfo(file_id="f_1", name=f"seen-by:{peer_cn or 'anonymous'}")]
        )


def _serve(pki: Pki, *, require_client_cert: bool) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    files_pb2_grpc.add_FileServiceServicer_to_server(Listing(), server)
    credentials = grpc.ssl_server_credentials(
        [(pki.read("server.key"), pki.read("server.pem"))],
        root_certificates=pki.read("ca.pem"),
        require_client_auth=require_client_cert,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[str]:
    yield from _serve(pki, require_client_cert=False)


@pytest.fixture
def mtls_server(pki: Pki) -> Iterator[str]:
    yield from _serve(pki, require_client_cert=True)


def test_tls_with_a_private_root_ca(tls_server: str, pki: Pki) -> None:
    tls = TlsConfig.from_files(root_ca=pki.ca_pem, server_name="localhost")
    with FileClient(Connection(tls_server, tls=tls, timeout=5)) as client:
        assert [f.name for f in client.list_files()] == ["seen-by:anonymous"]
    with (
        FileClient(Connection(tls_server, timeout=5)) as plaintext,
        pytest.raises(FileServiceError) as refused,
    ):
        plaintext.list_files()
    assert refused.value.code is grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_presents_the_client_certificate(mtls_server: str, pki: Pki) -> None:
    tls = TlsConfig.from_files(pki.ca_pem, pki.client_pem, pki.client_key, server_name="localhost")
    with FileClient(Connection(mtls_server, tls=tls, timeout=5)) as client:
        assert [f.name for f in client.list_files()] == ["seen-by:client-a"]
    without_cert = TlsConfig.from_files(root_ca=pki.ca_pem, server_name="localhost")
    with (
        FileClient(Connection(mtls_server, tls=without_cert, timeout=5)) as client,
        pytest.raises(FileServiceError),
    ):
        client.list_files()


def test_a_half_configured_client_cert_is_refused() -> None:
    with pytest.raises(ValueError, match="both client_cert and client_key"):
        TlsConfig(client_cert=b"cert")
