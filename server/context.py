"""The per-RPC context a handler can read without knowing it is served over gRPC.

Handlers live in the `cqrs` world and receive only their Request. What the transport knows
about the call (who called, with which metadata, how long is left) is published in a
context variable for the duration of the RPC. The RPC adapter runs the whole mediator
pipeline — middleware, handler generator, inline event handlers — in the RPC's own task, and
event-handler tasks copy the context when they are created, so ``current_rpc()`` works
everywhere a handler's code runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import grpc

from server.settings import compression_of

_current: contextvars.ContextVar[RpcContext] = contextvars.ContextVar("cqrs_grpc_rpc")
# Set by the token interceptor (server/auth.py) in the RPC's task before the handler runs.
_principal: contextvars.ContextVar[str | None] = contextvars.ContextVar("cqrs_grpc_principal", default=None)


@dataclasses.dataclass(frozen=True, slots=True)
class ClientIdentity:
    """Who the client is according to its verified certificate (mutual TLS).

    ``common_name`` is the subject CN (may be empty); ``sans`` the subject alternative names (DNS
    names, URIs such as SPIFFE ids, addresses) as grpc reports them; ``subject`` the whole subject
    (``CN=billing,O=acme``); ``pem`` the certificate itself.
    """

    common_name: str
    sans: tuple[str, ...]
    subject: str
    pem: str


def _identity(grpc_context: grpc.aio.ServicerContext[Any, Any]) -> ClientIdentity | None:
    auth = grpc_context.auth_context() or {}
    pem = auth.get("x509_pem_cert")
    if not pem:  # no TLS, or TLS without a client certificate: nobody was verified
        return None

    def first(key: str) -> str:
        values = list(auth.get(key) or [b""])
        return bytes(values[0]).decode(errors="replace")

    sans = tuple(bytes(v).decode(errors="replace") for v in auth.get("x509_subject_alternative_name", ()))
    return ClientIdentity(first("x509_common_name"), sans, first("x509_subject"), first("x509_pem_cert"))


class RpcContext:
    """What a handler may know about the RPC it serves.

    ``method`` is the full gRPC method path (``/demo.files.v1.FileService/ProcessFiles``).
    ``set_trailing_metadata``, ``set_compression`` and ``send_initial_metadata`` shape the response.
    ``metadata`` holds the invocation metadata, keys lower-cased, the last value winning
    (``metadata_all`` keeps every value). ``draining`` is set when the server starts a
    graceful shutdown: endless streams should wind down when they see it. Metadata and peer
    are read from grpc on first use only, so RPCs that never look pay nothing.

    Who is calling: ``principal`` is the name of the bearer token the call was authenticated
    with (``--auth-tokens-file``), ``client_identity`` the verified client certificate (mutual
    TLS, ``--tls-client-ca``); each is None when that mechanism is off. Authorization rules in
    handlers or middleware read them, e.g. ``if rpc.client_identity.common_name != "billing"``.
    """

    __slots__ = ("_identity", "_metadata", "draining", "grpc_context", "method", "principal", "started_at")

    def __init__(
        self, method: str, grpc_context: grpc.aio.ServicerContext[Any, Any], draining: asyncio.Event
    ) -> None:
        self.method = method
        self.grpc_context = grpc_context
        self.draining = draining
        self.started_at = time.monotonic()
        self._metadata: dict[str, str | bytes] | None = None
        self._identity: ClientIdentity | bool | None = False  # False: not read yet
        self.principal: str | None = _principal.get()

    @property
    def client_identity(self) -> ClientIdentity | None:
        """The verified client certificate's identity, or None without mutual TLS."""
        if self._identity is False:
            self._identity = _identity(self.grpc_context)
        return self._identity if isinstance(self._identity, ClientIdentity) else None

    @property
    def peer(self) -> str:
        """The caller's address as grpc reports it (``ipv4:127.0.0.1:53211``)."""
        return str(self.grpc_context.peer())

    @property
    def metadata_all(self) -> tuple[tuple[str, str | bytes], ...]:
        """Every invocation metadata pair, in the order the client sent them."""
        return tuple((str(key), value) for key, value in (self.grpc_context.invocation_metadata() or ()))

    @property
    def metadata(self) -> Mapping[str, str | bytes]:
        """Invocation metadata as a mapping; for a repeated key the last value wins."""
        if self._metadata is None:
            self._metadata = {key.lower(): value for key, value in self.metadata_all}
        return self._metadata

    def time_remaining(self) -> float | None:
        """Seconds left before the client's deadline, or None when the client set none."""
        remaining = self.grpc_context.time_remaining()
        return None if remaining is None else float(remaining)

    async def send_initial_metadata(self, *pairs: tuple[str, str | bytes]) -> None:
        """Send response headers now, before the first message (e.g. to say a subscription is live)."""
        await self.grpc_context.send_initial_metadata(pairs)

    def set_trailing_metadata(self, *pairs: tuple[str, str | bytes]) -> None:
        """Trailers to send when the RPC ends, with an error status too (replaces earlier ones)."""
        self.grpc_context.set_trailing_metadata(pairs)

    def set_compression(self, algorithm: str | grpc.Compression) -> None:
        """Compress this RPC's responses with ``"gzip"``, ``"deflate"`` or ``"none"`` (or a
        ``grpc.Compression``) instead of the server's default (``--compression``).

        The choice travels in the response headers, so make it before they are sent (the first
        message sends them). grpc.aio sends a unary response's headers without it: in a unary
        handler follow it with ``await rpc.send_initial_metadata()``.
        """
        self.grpc_context.set_compression(compression_of(algorithm))

    def disable_next_message_compression(self) -> None:
        """Send the next response message uncompressed (e.g. one that is already compressed)."""
        self.grpc_context.disable_next_message_compression()


def current_rpc() -> RpcContext:
    """The context of the RPC being served in this task.

    Raises LookupError outside an RPC (e.g. when a handler runs in a plain unit test);
    use ``maybe_current_rpc()`` for code that also runs without a server.
    """
    try:
        return _current.get()
    except LookupError:
        raise LookupError(
            "current_rpc() was called outside an RPC served by server.App; "
            "use maybe_current_rpc() in code that also runs without a server"
        ) from None


def maybe_current_rpc() -> RpcContext | None:
    """The context of the RPC being served in this task, or None outside one."""
    return _current.get(None)


def _enter(context: RpcContext) -> contextvars.Token[RpcContext]:
    return _current.set(context)


def _leave(token: contextvars.Token[RpcContext]) -> None:
    _current.reset(token)
