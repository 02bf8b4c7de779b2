"""Base classes for request and response models, and the shared envelopes."""

from __future__ import annotations

import types
from typing import Any, Generic, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.api.errors import STATUS_BY_TYPE

# Marks a response field that holds a credential shown once (an API key's secret, a pay-now
# link, a SetupIntent's client secret): never stored, so an idempotent replay answers null.
SHOWN_ONCE = "x-shown-once"


class RequestModel(BaseModel):
    """A JSON request body: unknown fields and type coercion are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


class QueryModel(BaseModel):
    """Query-string parameters: unknown ones are refused; strings are coerced to the field types."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class ResponseModel(BaseModel):
    # A field with a default is always in the answer: the OpenAPI document (serialization
    # schemas) lists it as required.
    model_config = ConfigDict(
        extra="forbid", defer_build=True, json_schema_serialization_defaults_required=True
    )


def shown_once(description: str) -> Any:
    """A response field holding a credential (see SHOWN_ONCE); its type must allow None."""
    return Field(description=description, json_schema_extra={SHOWN_ONCE: True})


def without_shown_once(model: type[BaseModel], body: Any) -> Any:
    """`body` (the JSON of a `model`) with every field that `model`, or a model nested in it,
    marks as shown once set to null."""
    if not isinstance(body, dict):
        return body
    redacted = dict(body)
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key not in redacted:
            continue
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get(SHOWN_ONCE):
            redacted[key] = None
        else:
            redacted[key] = _without_shown_once_as(field.annotation, redacted[key])
    return redacted


def _without_shown_once_as(annotation: Any, value: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return without_shown_once(annotation, value)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list and isinstance(value, list) and args:
        return [_without_shown_once_as(args[0], item) for item in value]
    if origin in (Union, types.UnionType):
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        return without_shown_once(models[0], value) if len(models) == 1 else value
    return value


class ErrorDetail(ResponseModel):
    field: str
    message: str


def _payment_not_required(schema: dict[str, Any]) -> None:
    """`payment` is in a `payment_failed` answer only: no other error carries it."""
    schema["required"] = [name for name in schema.get("required", []) if name != "payment"]


class ErrorBody(ResponseModel):
    model_config = ConfigDict(json_schema_extra=_payment_not_required)

    type: str = Field(json_schema_extra={"enum": list(STATUS_BY_TYPE)})
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)
    payment: dict[str, Any] | None = Field(
        default=None,
        description="payment_failed only: the payment object (API.md), with why it failed",
        json_schema_extra={"x-only-for": "payment_failed"},
    )


class ErrorResponse(ResponseModel):
    error: ErrorBody


ItemT = TypeVar("ItemT")


class ListResponse(ResponseModel, Generic[ItemT]):
    data: list[ItemT]
    has_more: bool
    next_cursor: str | None


class ListQuery(QueryModel):
    limit: int = Field(default=20, ge=1, le=100)
    starting_after: str | None = Field(default=None, min_length=1, max_length=2048)
