"""Error envelope and the mapping of domain errors to HTTP statuses (API.md, Conventions)."""

from __future__ import annotations

import json
from typing import Any

from chalice import Response
from pydantic import ValidationError

from chalicelib.domain.errors import DomainError, FieldProblem

STATUS_BY_TYPE: dict[str, int] = {
    "invalid_request": 400,
    "unauthorized": 401,
    "payment_failed": 402,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "rate_limited": 429,
    "internal": 500,
    "unavailable": 503,
}


def error_body(
    error_type: str, message: str, details: list[FieldProblem] | None = None, **extra: Any
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "type": error_type,
        "message": message,
        "details": [{"field": d.field, "message": d.message} for d in details or []],
    }
    error.update(extra)
    return {"error": error}


def error_response(
    error_type: str,
    message: str,
    details: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    return Response(
        body=json.dumps(error_body(error_type, message, details, **extra)),
        status_code=STATUS_BY_TYPE[error_type],
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def domain_error_response(error: DomainError) -> Response:
    extra: dict[str, Any] = {}
    payment = getattr(error, "payment", None)
    if payment is not None:
        extra["payment"] = payment
    return error_response(error.error_type, error.message, error.details, **extra)


def validation_problems(error: ValidationError, prefix: str = "") -> list[FieldProblem]:
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or prefix.rstrip(".")
        problems.append(FieldProblem(f"{prefix}{location}" if location else "body", item["msg"]))
    return problems
