"""Reusable, strictly validated request field types (API.md, Conventions)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

MAX_AMOUNT = 999_999_999_999  # minor units; far above any real price, far below DynamoDB's limit


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_not_blank)]
Description = Annotated[str, StringConstraints(max_length=2000)]
Currency = Annotated[str, StringConstraints(pattern=r"^[a-z]{3}$")]
StripeAccountId = Annotated[str, StringConstraints(pattern=r"^acct_[A-Za-z0-9]{1,64}$")]
Email = Annotated[
    str,
    StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]
Amount = Annotated[int, Field(ge=0, le=MAX_AMOUNT)]
ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
