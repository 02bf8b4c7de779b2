"""Domain errors. Each maps to one HTTP status in api/errors.py (see API.md, Conventions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


class DomainError(Exception):
    """Base class: a business rule refused the operation; nothing was changed."""

    error_type = "internal"

    def __init__(self, message: str, details: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[FieldProblem] = list(details or [])


class InvalidRequest(DomainError):
    error_type = "invalid_request"

    @classmethod
    def for_field(cls, field_name: str, message: str) -> InvalidRequest:
        return cls(message, [FieldProblem(field_name, message)])


class Unauthorized(DomainError):
    error_type = "unauthorized"


class Forbidden(DomainError):
    error_type = "forbidden"


class NotFound(DomainError):
    error_type = "not_found"


class Conflict(DomainError):
    """Illegal transition, concurrent change, or idempotency key reused with another body."""

    error_type = "conflict"


class ConcurrentChange(Conflict):
    """An optimistic-locking condition failed: someone else changed the item first."""


class ChargeInProgress(Conflict):
    """A charge of the subscription waits for Stripe's answer: a busy moment, not a refusal.
    Answered 409 with Retry-After and never kept as an idempotency key's answer; not retried
    by the services' own loop (the charge takes as long as Stripe does)."""


class AccountDisconnected(Conflict):
    """Stripe refuses the platform access to the connected account a request names (it
    deauthorized the platform): Stripe did nothing, and nothing can be done there until the
    community reconnects it."""


class PaymentFailed(DomainError):
    """The charge was declined or needs authentication; the payment is recorded as failed."""

    error_type = "payment_failed"

    def __init__(self, message: str, payment: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.payment = payment


class RateLimited(DomainError):
    error_type = "rate_limited"

    def __init__(self, message: str, retry_after_seconds: int = 1) -> None:
        super().__init__(message)
        self.retry_after_seconds = max(1, retry_after_seconds)


class Unavailable(DomainError):
    """A dependency (Stripe, DynamoDB) failed transiently; safe to retry."""

    error_type = "unavailable"


class StripeRateLimited(Unavailable):
    """Stripe answered 429 (`rate_limit`, or `lock_timeout` on a busy object): it did not act
    on the request, so the same request (same idempotency key) may be sent again later."""

    def __init__(self, message: str, code: str = "rate_limit") -> None:
        super().__init__(message)
        self.code = code


class DuplicateEvent(Exception):
    """The record of an inbound event says it was already applied: nothing was changed."""

    def __init__(self, event_id: str = "") -> None:
        super().__init__(event_id)
        self.event_id = event_id
