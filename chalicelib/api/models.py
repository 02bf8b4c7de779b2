"""Base classes for request and response models, and the shared envelopes."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class RequestModel(BaseModel):
    """A JSON request body: unknown fields and type coercion are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


class QueryModel(BaseModel):
    """Query-string parameters: unknown ones are refused; strings are coerced to the field types."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ErrorDetail(ResponseModel):
    field: str
    message: str


class ErrorBody(ResponseModel):
    type: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


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
