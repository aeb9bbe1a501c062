"""Domain errors a handler raises to end a request with a meaningful outcome.

They carry no transport detail: a gRPC server maps each class to a status code, a web
framework to an HTTP status. Their ``message`` is written for the caller and may be shown
to them; anything else a handler raises is treated as a bug and never shown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping


@dataclasses.dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field of a request: a dotted path (``file_ids[2]``) and what is wrong with it."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error meant for the caller.

    ``reason`` is a stable, machine-readable UPPER_SNAKE_CASE code (``FILE_NOT_FOUND``) that
    clients may branch on; ``metadata`` adds string facts about this occurrence.
    """

    default_reason = "DOMAIN_ERROR"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})


class ValidationError(DomainError):
    """The request is malformed: one or more fields break a rule."""

    default_reason = "INVALID_REQUEST"

    def __init__(
        self,
        message: str = "the request is invalid",
        *,
        violations: Iterable[FieldViolation] = (),
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations: tuple[FieldViolation, ...] = tuple(violations)

    @classmethod
    def for_field(cls, field: str, description: str) -> ValidationError:
        """Shorthand for the common case of a single bad field."""
        return cls(f"{field}: {description}", violations=[FieldViolation(field, description)])


class NotFoundError(DomainError):
    """The thing the request names does not exist."""

    default_reason = "NOT_FOUND"


class AlreadyExistsError(DomainError):
    """The thing the request would create exists already."""

    default_reason = "ALREADY_EXISTS"


class PermissionDeniedError(DomainError):
    """The caller is known but may not do this."""

    default_reason = "PERMISSION_DENIED"


class UnauthenticatedError(DomainError):
    """The caller could not be identified."""

    default_reason = "UNAUTHENTICATED"


class FailedPreconditionError(DomainError):
    """The system is not in a state where this request can run (retrying as-is will not help)."""

    default_reason = "FAILED_PRECONDITION"


class OutOfRangeError(DomainError):
    """The request points past the valid range (a position beyond the end); it may be valid later."""

    default_reason = "OUT_OF_RANGE"


class ResourceExhaustedError(DomainError):
    """A quota or size limit was hit."""

    default_reason = "RESOURCE_EXHAUSTED"


class UnavailableError(DomainError):
    """A dependency is down for now; retrying later may succeed."""

    default_reason = "UNAVAILABLE"


__all__ = [
    "AlreadyExistsError",
    "DomainError",
    "FailedPreconditionError",
    "FieldViolation",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "ValidationError",
]
