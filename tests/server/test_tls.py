"""TLS and mutual TLS against an in-process server on 127.0.0.1, with real grpc.aio clients."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import ssl
from pathlib import Path

import grpc
import pytest

from server import ServerSettings, StartupError
from server.testing import serve_for_test
from streamtest.v1 import stream_test_pb2, stream_test_pb2_grpc
from tests.pki import Pki, needs_openssl
from tests.server.ticks import ticks_app

pytestmark = needs_openssl


def tls_settings(pki: Pki, *, mutual: bool = False, **more: object) -> ServerSettings:
    return ServerSettings(
        grace=0.5,
        tls_cert=str(pki.server_pem),
        tls_key=str(pki.server_key),
        tls_client_ca=str(pki.ca_pem) if mutual else None,
        **more,  # type: ignore[arg-type]
    )


def client_credentials(pki: Pki, who: str | None = None, ca: str = "ca.pem") -> grpc.ChannelCredentials:
    if who is None:
        return grpc.ssl_channel_credentials(pki.read(ca))
    return grpc.ssl_channel_credentials(pki.read(ca), pki.read(f"{who}.key"), pki.read(f"{who}.pem"))


async def whoami(channel: grpc.aio.Channel) -> str:
    stub = stream_test_pb2_grpc.TickServiceStub(channel)
    reply = await stub.Echo(stream_test_pb2.EchoQuery(text="whoami"), timeout=5)
    return str(reply.text)


async def test_tls_serves_a_client_that_trusts_the_ca_and_refuses_plaintext(pki: Pki) -> None:
    async with serve_for_test(
        ticks_app(settings=tls_settings(pki)), credentials=client_credentials(pki)
    ) as s:
        assert await whoami(s.channel) == "principal=None cn=- sans=-"  # TLS only: nobody verified
        async with grpc.aio.insecure_channel(s.address) as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await whoami(plaintext)
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        # a client that does not trust the server's CA is refused by the handshake too
        async with grpc.aio.secure_channel(s.address, client_credentials(pki, ca="foreign-ca.pem")) as other:
            with pytest.raises(grpc.aio.AioRpcError) as untrusted:
                await whoami(other)
            assert untrusted.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_accepts_a_client_cert_of_the_ca_and_shows_its_identity(pki: Pki) -> None:
    app = ticks_app(settings=tls_settings(pki, mutual=True))
    async with serve_for_test(app, credentials=client_credentials(pki, "client")) as served:
        assert await whoami(served.channel) == (
            "principal=None cn=client-a sans=client-a.test,spiffe://test/client-a"
        )


@pytest.mark.parametrize("who", [None, "foreign-client"], ids=["no-client-cert", "cert-of-another-ca"])
async def test_mutual_tls_refuses_a_client_without_a_cert_of_the_ca(pki: Pki, who: str | None) -> None:
    async with serve_for_test(ticks_app(settings=tls_settings(pki, mutual=True))) as served:
        async with grpc.aio.secure_channel(served.address, client_credentials(pki, who)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await whoami(channel)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


def _key_mismatch(pki: Pki) -> ServerSettings:
    return ServerSettings(tls_cert=str(pki.server_pem), tls_key=str(pki.client_key))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            lambda p: ServerSettings(tls_cert=str(p.dir / "nope.pem"), tls_key=str(p.server_key)),
            "no such file",
        ),
        (_key_mismatch, "is not the private key of the certificate"),
        (lambda p: ServerSettings(tls_cert=str(p.server_ext), tls_key=str(p.server_key)), "not a PEM file"),
        (lambda p: ServerSettings(tls_cert=str(p.server_pem)), "--tls-cert was given without --tls-key"),
        (lambda p: ServerSettings(tls_client_ca=str(p.ca_pem)), "--tls-client-ca needs --tls-cert"),
        (
            lambda p: dataclasses.replace(tls_settings(p), tls_client_ca=str(p.server_key)),
            "holds no usable CA certificate",
        ),
    ],
    ids=["missing-cert", "key-of-another-cert", "not-pem", "cert-without-key", "ca-without-tls", "bad-ca"],
)
async def test_unusable_tls_files_refuse_to_start_with_a_clear_message(
    pki: Pki, settings: object, message: str
) -> None:
    app = ticks_app(settings=settings(pki))  # type: ignore[operator]
    with pytest.raises(StartupError, match=message):
        await app.start()


def _served_certificate_cn(address: str, ca: Path) -> str:
    """The CN of the certificate a fresh TLS handshake gets (stdlib client, ALPN h2)."""
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        subject = dict(pair[0] for pair in tls.getpeercert()["subject"])  # type: ignore[index]
        return str(subject["commonName"])


async def test_reload_serves_a_new_certificate_to_new_connections_and_keeps_open_streams(
    pki: Pki, tmp_path: Path
) -> None:
    cert, key = tmp_path / "tls.pem", tmp_path / "tls.key"
    shutil.copy(pki.server_pem, cert)
    shutil.copy(pki.server_key, key)
    settings = ServerSettings(grace=0.5, tls_cert=str(cert), tls_key=str(key))
    async with serve_for_test(ticks_app(settings=settings), credentials=client_credentials(pki)) as served:
        stub = stream_test_pb2_grpc.TickServiceStub(served.channel)
        stream = stub.Ticks(stream_test_pb2.TicksCommand(count=1, mode="block"))
        assert (await stream.read()).seq == 1
        assert await asyncio.to_thread(_served_certificate_cn, served.address, pki.ca_pem) == "localhost"

        cert.write_bytes(b"not a certificate")  # a half-written file: refused, the old pair stays
        assert served.running.reload() is False
        assert await asyncio.to_thread(_served_certificate_cn, served.address, pki.ca_pem) == "localhost"

        shutil.copy(pki.server2_pem, cert)
        shutil.copy(pki.server2_key, key)
        assert served.running.reload() is True
        assert await asyncio.to_thread(_served_certificate_cn, served.address, pki.ca_pem) == "localhost-2"

        assert not stream.done()  # the stream opened before the reload is still being served
        assert await whoami(served.channel)  # and its connection still carries new calls
        stream.cancel()
