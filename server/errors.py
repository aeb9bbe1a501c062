"""Exceptions → gRPC statuses with rich details, and nothing internal on the wire.

Domain errors (``cqrs.errors``) carry a message meant for the caller; they end the RPC with
their mapped code, the message, and ``grpc-status-details-bin`` holding a
``google.rpc.Status`` with an ``ErrorInfo`` (reason, domain, metadata) and, for validation
errors, a ``BadRequest`` with one field violation per bad field.

Anything else is a bug: it is logged with its traceback and an error id, and the caller gets
INTERNAL with a generic message and the same id (in the message, in an ``ErrorInfo`` and in
the ``error-id`` trailer) so the two can be matched — never the exception's text, which may
hold paths, SQL or secrets (grpc's own default would send ``Unexpected <class>: text``).

A handler that wants a status of its own raises ``Status(code, message, details=...)``: the code
and message travel as given, with exactly the details it lists. Whatever the error, the call is
ended by ``abort_with``, which keeps the trailers the handler set.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from cqrs import errors as domain

logger = logging.getLogger("server.errors")

ERROR_ID_TRAILER = "error-id"
STATUS_DETAILS_TRAILER = "grpc-status-details-bin"

DEFAULT_ERROR_CODES: Mapping[type[BaseException], grpc.StatusCode] = {
    domain.ValidationError: grpc.StatusCode.INVALID_ARGUMENT,
    domain.NotFoundError: grpc.StatusCode.NOT_FOUND,
    domain.AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    domain.PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    domain.UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    domain.FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    domain.ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    domain.OutOfRangeError: grpc.StatusCode.OUT_OF_RANGE,
    domain.UnavailableError: grpc.StatusCode.UNAVAILABLE,
    domain.DomainError: grpc.StatusCode.FAILED_PRECONDITION,
}


class Status(Exception):
    """Ends the RPC with ``code`` and ``message`` as given: ``raise Status(StatusCode.ABORTED, "retry")``.

    ``details`` are protobuf messages (``ErrorInfo``, ``BadRequest``, ``RetryInfo``, ``DebugInfo``...)
    sent packed in the ``google.rpc.Status`` of ``grpc-status-details-bin``; without any, that trailer
    is not sent. Raise it from any handler or middleware, before or after streamed messages; trailers
    set with ``current_rpc().set_trailing_metadata()`` arrive with it. ``OK`` is refused: a handler
    that succeeds simply returns.
    """

    def __init__(self, code: grpc.StatusCode, message: str = "", *, details: Iterable[Message] = ()) -> None:
        if not isinstance(code, grpc.StatusCode):
            raise TypeError(f"Status needs a grpc.StatusCode, got {code!r}")
        if code is grpc.StatusCode.OK:
            raise ValueError("Status(OK) is not an error: return from the handler to end the RPC with OK")
        self.details = tuple(details)
        for detail in self.details:
            if not isinstance(detail, Message):
                raise TypeError(f"Status details must be protobuf messages (e.g. ErrorInfo), got {detail!r}")
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class RpcError(Exception):
    """An outcome computed by the server itself (bad request bytes, load shedding...).

    Raised inside the RPC adapter and turned into a status like a domain error.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str,
        violations: Iterable[domain.FieldViolation] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.violations = tuple(violations)
        self.metadata = dict(metadata or {})


class Outcome:
    """The status an RPC ends with: code, caller-safe message and trailers."""

    __slots__ = ("code", "message", "trailers")

    def __init__(
        self, code: grpc.StatusCode, message: str, trailers: tuple[tuple[str, str | bytes], ...]
    ) -> None:
        self.code = code
        self.message = message
        self.trailers = trailers


class ErrorMapper:
    """Maps exception classes to status codes by walking the exception's MRO.

    The table starts from ``DEFAULT_ERROR_CODES``; ``register()`` extends or overrides it
    (e.g. ``mapper.register(PaymentDeclined, grpc.StatusCode.FAILED_PRECONDITION)``). Only
    ``Status``, ``DomainError``s and ``RpcError``s keep their message on the wire; a registered
    non-domain exception is sent with its class's docstring summary, never its text.
    """

    def __init__(self, domain_name: str = "cqrs-grpc") -> None:
        self.domain_name = domain_name
        self._codes: dict[type[BaseException], grpc.StatusCode] = dict(DEFAULT_ERROR_CODES)

    def register(self, exc_type: type[BaseException], code: grpc.StatusCode) -> None:
        if code is grpc.StatusCode.OK:
            raise ValueError(f"{exc_type.__qualname__} cannot map to OK: an error must end the RPC as one")
        self._codes[exc_type] = code

    def code_for(self, exc: BaseException) -> grpc.StatusCode | None:
        for klass in type(exc).__mro__:
            code = self._codes.get(klass)
            if code is not None:
                return code
        return None

    def outcome(self, exc: BaseException, *, method: str) -> Outcome:
        """The status for ``exc`` raised while serving ``method``; logs unexpected ones."""
        if isinstance(exc, Status):
            return _explicit(exc)
        if isinstance(exc, RpcError):
            return self._rich(exc.code, exc.message, exc.reason, exc.metadata, exc.violations)
        code = self.code_for(exc)
        if isinstance(exc, domain.DomainError) and code is not None:
            violations = exc.violations if isinstance(exc, domain.ValidationError) else ()
            return self._rich(code, exc.message, exc.reason, exc.metadata, violations)
        if code is not None:
            summary = _first_line(type(exc).__doc__) or type(exc).__name__
            return self._rich(code, summary, _upper_snake(type(exc).__name__), {}, ())
        return self.internal(exc, method=method)

    def internal(self, exc: BaseException, *, method: str) -> Outcome:
        error_id = uuid.uuid4().hex
        logger.error(
            "unexpected error in %s (error id %s)",
            method,
            error_id,
            exc_info=exc,
            extra={"error_id": error_id, "method": method},
        )
        outcome = self._rich(
            grpc.StatusCode.INTERNAL,
            f"internal error (error id {error_id})",
            "INTERNAL",
            {"error_id": error_id},
            (),
        )
        outcome.trailers += ((ERROR_ID_TRAILER, error_id),)
        return outcome

    def _rich(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str,
        metadata: Mapping[str, str],
        violations: Iterable[domain.FieldViolation],
    ) -> Outcome:
        status = status_pb2.Status(code=code.value[0], message=message)
        info = error_details_pb2.ErrorInfo(reason=reason, domain=self.domain_name, metadata=dict(metadata))
        status.details.append(_pack(info))
        field_violations = [
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in violations
        ]
        if field_violations:
            status.details.append(_pack(error_details_pb2.BadRequest(field_violations=field_violations)))
        return Outcome(code, message, ((STATUS_DETAILS_TRAILER, status.SerializeToString()),))


def _explicit(exc: Status) -> Outcome:
    if not exc.details:
        return Outcome(exc.code, exc.message, ())
    status = status_pb2.Status(code=exc.code.value[0], message=exc.message, details=map(_pack, exc.details))
    return Outcome(exc.code, exc.message, ((STATUS_DETAILS_TRAILER, status.SerializeToString()),))


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], outcome: Outcome) -> NoReturn:
    """End the call with ``outcome``, keeping the trailing metadata the handler set.

    Every error path of every RPC adapter ends here. grpc.aio's ``abort`` replaces the trailers
    set so far with the ones it is given, so the handler's are passed on with ours; where both
    name a key ours win, and ``grpc-status-details-bin`` is only ever ours: it must describe the
    status actually sent.
    """
    ours = {STATUS_DETAILS_TRAILER, *(key for key, _ in outcome.trailers)}
    kept = tuple((key, value) for key, value in context.trailing_metadata() or () if key not in ours)
    await context.abort(outcome.code, outcome.message, kept + outcome.trailers)
    raise AssertionError("grpc's abort() returned")  # it raises AbortError; NoReturn must hold


def _first_line(doc: str | None) -> str:
    return next((line.strip() for line in (doc or "").splitlines() if line.strip()), "")


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _upper_snake(name: str) -> str:
    out: list[str] = []
    for index, char in enumerate(name):
        if char.isupper() and index and not name[index - 1].isupper():
            out.append("_")
        out.append(char.upper())
    return "".join(out)


def guarded(
    behaviour: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]],
    parse: Callable[[bytes], Any],
) -> Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    """``behaviour`` taking raw request bytes: undecodable bytes end the call with INVALID_ARGUMENT
    and an unexpected exception with INTERNAL and an error id (logged with its traceback).

    For the services that do not go through the RPC adapter (health, reflection): grpc's own
    handling of a failing deserializer or servicer would send ``Unexpected <class ...>: text``.
    """

    async def run(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            decoded = parse(request)
        except Exception:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the request is not a valid message")
        try:
            return await behaviour(decoded, context)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as exc:
            outcome = ErrorMapper().internal(exc, method=getattr(behaviour, "__qualname__", "?"))
            await abort_with(context, outcome)

    return run
