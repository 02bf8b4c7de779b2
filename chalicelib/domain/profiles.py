"""Profiles: customers (email, can pay) and their dependents (no email, an account holder)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from chalicelib.domain.errors import InvalidRequest

ProfileKind = Literal["customer", "dependent"]


@dataclass(frozen=True)
class Profile:
    id: str
    community_id: str
    kind: ProfileKind
    name: str
    email: str | None
    account_holder_id: str | None
    free_access: bool
    credit_balance: int
    currency: str
    created_at: datetime
    stripe_customer_id: str | None = None

    @property
    def is_customer(self) -> bool:
        return self.kind == "customer"

    def ensure_customer(self, field_name: str) -> None:
        if not self.is_customer:
            raise InvalidRequest.for_field(field_name, f"Profile {self.id} is not a customer.")

    def with_credit(self, credit_balance: int) -> Profile:
        if credit_balance < 0:
            raise ValueError("credit balance never goes negative")
        return replace(self, credit_balance=credit_balance)


def validate_new_profile(
    kind: ProfileKind, email: str | None, account_holder: Profile | None
) -> None:
    """Customers need an email; dependents have none and belong to a customer."""
    if kind == "customer":
        if not email:
            raise InvalidRequest.for_field("email", "Customers need an email.")
        if account_holder is not None:
            raise InvalidRequest.for_field("account_holder_id", "Customers have no account holder.")
        return
    if email:
        raise InvalidRequest.for_field("email", "Dependents have no email.")
    if account_holder is None:
        raise InvalidRequest.for_field("account_holder_id", "Dependents need an account holder.")
    account_holder.ensure_customer("account_holder_id")
