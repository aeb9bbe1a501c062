"""How the SDK reaches a server: target, TLS, default deadline and metadata."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

Metadata = Sequence[tuple[str, str]]


@dataclasses.dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS settings: ``root_ca`` (PEM) to trust the server, a client cert/key pair for mutual TLS.

    ``root_ca=None`` trusts the system roots. ``server_name`` overrides the name checked against
    the server certificate (for certificates issued to a name other than the address dialled).
    """

    root_ca: bytes | None = None
    client_cert: bytes | None = None
    client_key: bytes | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("mutual TLS needs both client_cert and client_key, or neither")

    @classmethod
    def from_files(
        cls,
        root_ca: str | Path | None = None,
        client_cert: str | Path | None = None,
        client_key: str | Path | None = None,
        server_name: str | None = None,
    ) -> TlsConfig:
        def read(path: str | Path | None) -> bytes | None:
            return None if path is None else Path(path).read_bytes()

        return cls(read(root_ca), read(client_cert), read(client_key), server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.root_ca, self.client_key, self.client_cert)

    def options(self) -> list[tuple[str, Any]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


@dataclasses.dataclass(frozen=True, slots=True)
class Connection:
    """Everything both clients need to open a channel and make calls.

    ``timeout`` is the default deadline (seconds) of unary calls; streams get none unless a call
    passes one, since a watch is meant to stay open. ``metadata`` is sent with every call, before
    the call's own. ``token`` is a bearer token sent as ``authorization: Bearer <token>`` with
    every call (servers started with ``--auth-tokens-file``); it is left out of ``repr``.
    """

    target: str = "127.0.0.1:50051"
    tls: TlsConfig | None = None
    timeout: float | None = 30.0
    metadata: Metadata = ()
    options: Sequence[tuple[str, Any]] = ()
    token: str | None = dataclasses.field(default=None, repr=False)

    def channel_options(self) -> list[tuple[str, Any]]:
        return [*(self.tls.options() if self.tls else []), *self.options]

    def call_metadata(self, extra: Metadata | Mapping[str, str] | None) -> list[tuple[str, str]]:
        pairs: Iterable[tuple[str, str]] = extra.items() if isinstance(extra, Mapping) else (extra or ())
        auth = [("authorization", f"Bearer {self.token}")] if self.token else []
        return [*auth, *self.metadata, *pairs]


def insecure_or_secure(connection: Connection, aio: bool) -> Any:
    """A grpc (or grpc.aio) channel for ``connection``."""
    module: Any = grpc.aio if aio else grpc
    options = connection.channel_options()
    if connection.tls is None:
        return module.insecure_channel(connection.target, options=options)
    return module.secure_channel(connection.target, connection.tls.credentials(), options=options)
