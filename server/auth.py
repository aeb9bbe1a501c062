"""Bearer-token authentication for every RPC, in one server interceptor.

The tokens file (``--auth-tokens-file``) holds one token per line, optionally followed by a name
and the methods the token may call::

    # TOKEN                            NAME     METHODS (comma-separated fnmatch patterns)
    3f9c0a7e5b2d4c6f8a1e9d7b5c3a1f0e   ops
    b2c4d6e8f0a1c3e5a7b9d1f3e5c7a9b1   reader   demo.files.v1.FileService/List*,*/GetFileStatus

Blank lines and lines starting with ``#`` are ignored. A token is at least 16 characters and must
not start with ``#``; without a name it is called ``line-N``; without methods it may call every
method. Patterns match ``package.Service/Method`` (``*`` matches anything, ``/`` included).

Why an interceptor and not the RPC adapter: health and reflection are served by their own
handlers, and an interceptor is the one place every RPC passes through, known methods or not,
before any request byte is decoded. A refusal is UNAUTHENTICATED (no, malformed or unknown
token) or PERMISSION_DENIED (a known token, a method it may not call), with an ``ErrorInfo``
built by :class:`server.errors.ErrorMapper` like every other status.

Tokens are kept only as SHA-256 digests and compared with ``hmac.compare_digest`` against every
known digest, without stopping at a match: the time taken says nothing about which token, or
which prefix or length of a token, was close. Tokens never appear in logs or error messages;
token names do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from server.context import RpcContext, _principal
from server.errors import ErrorMapper, RpcError
from server.observability import RpcLog
from server.routing import StartupError

logger = logging.getLogger("server.auth")

MIN_TOKEN_LENGTH = 16
_BEARER = "bearer "


class TokenFileError(StartupError):
    """The tokens file cannot be used; each problem names the line (never the token)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    """A known token: its name, SHA-256 digest and the methods it may call."""

    name: str
    digest: bytes
    methods: tuple[str, ...] = ("*",)

    def allows(self, method: str) -> bool:
        """``method`` is ``/package.Service/Method`` as grpc names it."""
        name = method.lstrip("/")
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.methods)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_tokens(text: str, source: str = "tokens file") -> tuple[Token, ...]:
    """The tokens of a tokens file's ``text``; raise :class:`TokenFileError` listing every problem."""
    problems: list[str] = []
    tokens: list[Token] = []
    lines_of_digest: dict[bytes, int] = {}
    lines_of_name: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) > 3:
            problems.append(
                f"{source} line {number}: expected 'TOKEN [NAME [METHOD,...]]', got {len(fields)} fields"
            )
            continue
        secret = fields[0]
        name = fields[1] if len(fields) > 1 else f"line-{number}"
        methods = tuple(p.lstrip("/") for p in fields[2].split(",") if p) if len(fields) > 2 else ("*",)
        if len(secret) < MIN_TOKEN_LENGTH:
            problems.append(
                f"{source} line {number} ({name}): the token is shorter than {MIN_TOKEN_LENGTH} characters; "
                "make one with `openssl rand -hex 32`"
            )
            continue
        digest = _digest(secret)
        if digest in lines_of_digest:
            problems.append(f"{source} line {number}: the same token as line {lines_of_digest[digest]}")
            continue
        if name in lines_of_name:
            problems.append(
                f"{source} line {number}: the name {name!r} is already used on line {lines_of_name[name]}"
            )
            continue
        if not methods:
            problems.append(f"{source} line {number} ({name}): an empty method list")
            continue
        lines_of_digest[digest] = lines_of_name[name] = number
        tokens.append(Token(name, digest, methods))
    if not tokens and not problems:
        problems.append(f"{source} holds no token: every authenticated call would be refused")
    if problems:
        raise TokenFileError(problems)
    return tuple(tokens)


def load_tokens(path: str) -> tuple[Token, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise TokenFileError([f"--auth-tokens-file {path}: cannot be read ({reason})"]) from None
    return parse_tokens(text, f"--auth-tokens-file {path}")


if TYPE_CHECKING:  # grpc's classes are generic in its stubs only
    Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]]
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor


class TokenAuth(_Interceptor):
    """Checks ``authorization: Bearer <token>`` on every RPC except those of ``open_services``.

    On success the token's name is published for the RPC (``current_rpc().principal``); on
    failure the call gets a handler that only ends it with the refusal, so the request is never
    decoded and no application code runs.
    """

    def __init__(
        self,
        path: str,
        *,
        errors: ErrorMapper,
        log: RpcLog,
        draining: asyncio.Event,
        open_services: Iterable[str] = (),
    ) -> None:
        self._path = path
        self._tokens = load_tokens(path)
        self._errors = errors
        self._log = log
        self._draining = draining
        self._open = tuple(f"/{service}/" for service in open_services)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(token.name for token in self._tokens)

    def reload(self) -> bool:
        """Re-read the tokens file; calls from now on use it if it is valid. True on success."""
        try:
            self._tokens = load_tokens(self._path)
        except TokenFileError as exc:
            logger.error("tokens reload failed, still using the previous tokens: %s", exc)
            return False
        logger.info("tokens reloaded: %d token(s)", len(self._tokens))
        return True

    def match(self, presented: str) -> Token | None:
        """The token whose secret is ``presented``, compared in constant time against all of them."""
        digest = _digest(presented)
        found: Token | None = None
        for token in self._tokens:
            if hmac.compare_digest(digest, token.digest) and found is None:
                found = token
        return found

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:  # None too (unknown method); the stubs leave it out
        method: str = handler_call_details.method
        if not self.guards(method):
            return await continuation(handler_call_details)
        refusal = self.check(method, handler_call_details.invocation_metadata or ())
        if isinstance(refusal, RpcError):
            return self._refuse(method, refusal)
        # Same task as the handler (grpc.aio runs interceptors in the RPC's task): RpcContext reads it.
        _principal.set(refusal.name)
        return await continuation(handler_call_details)

    def guards(self, method: str) -> bool:
        """Whether ``method`` (``/package.Service/Method``) needs a token (health and reflection may not)."""
        return not method.startswith(self._open)

    def check(self, method: str, metadata: Iterable[tuple[str, str | bytes]]) -> Token | RpcError:
        """The token the ``authorization`` metadata names if it may call ``method``, else the refusal."""
        values = [value for key, value in metadata if key.lower() == "authorization"]
        if not values:
            return RpcError(
                grpc.StatusCode.UNAUTHENTICATED,
                "this call needs a bearer token: send the metadata 'authorization: Bearer <token>'",
                reason="TOKEN_MISSING",
            )
        value = values[0] if isinstance(values[0], str) else values[0].decode("latin-1")
        scheme, secret = value[: len(_BEARER)], value[len(_BEARER) :].strip()
        if len(values) > 1 or scheme.lower() != _BEARER or not secret:
            return RpcError(
                grpc.StatusCode.UNAUTHENTICATED,
                "the authorization metadata must be one 'Bearer <token>' value",
                reason="TOKEN_MALFORMED",
            )
        token = self.match(secret)
        if token is None:
            return RpcError(
                grpc.StatusCode.UNAUTHENTICATED,
                "the bearer token is not valid (unknown, revoked or mistyped)",
                reason="TOKEN_INVALID",
            )
        if not token.allows(method):
            return RpcError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"token {token.name!r} may not call {method.lstrip('/')}",
                reason="METHOD_NOT_ALLOWED",
                metadata={"principal": token.name, "method": method.lstrip("/")},
            )
        return token

    def _refuse(self, method: str, refusal: RpcError) -> grpc.RpcMethodHandler[Any, Any]:
        outcome = self._errors.outcome(refusal, method=method)
        log, draining = self._log, self._draining

        # A stream-stream handler fits any call shape on the wire and reads no request.
        async def refuse(_requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            log.finished(RpcContext(method, context, draining), outcome.code, 0)
            await context.abort(outcome.code, outcome.message, outcome.trailers)

        return grpc.stream_stream_rpc_method_handler(refuse)
