"""Reusable, strictly validated request field types (API.md, Conventions)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

from chalicelib.domain.currencies import STRIPE_MAXIMUM_AMOUNT

MAX_AMOUNT = 999_999_999_999  # minor units; far above any real price, far below DynamoDB's limit


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is past year 9999 in UTC
        raise ValueError("is out of range once converted to UTC") from None


Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_not_blank)]
Description = Annotated[str, StringConstraints(max_length=2000)]
Currency = Annotated[str, StringConstraints(pattern=r"^[a-z]{3}$")]
StripeAccountId = Annotated[str, StringConstraints(pattern=r"^acct_[A-Za-z0-9]{1,64}$")]
Email = Annotated[
    str,
    StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]
# A price or fee: the document states Stripe's maximum, which the domain refuses naming the
# currency's amount ("999,999.99 USD"); the model's own bound only keeps absurd numbers out.
Amount = Annotated[
    int, Field(ge=0, le=MAX_AMOUNT, json_schema_extra={"maximum": STRIPE_MAXIMUM_AMOUNT})
]
ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# A time with its offset, converted to UTC (a time without an offset is refused).
UtcTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]
