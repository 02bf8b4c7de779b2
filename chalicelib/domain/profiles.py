"""Profiles: customers (email, can pay) and their dependents (no email, an account holder)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from chalicelib.domain.errors import InvalidRequest

ProfileKind = Literal["customer", "dependent"]
LinkRole = Literal["owner", "member"]
SubscriptionStatus = Literal["inactive", "active", "failed_payment", "expiring", "cancelled"]
SUBSCRIPTION_STATUSES: tuple[SubscriptionStatus, ...] = (
    "inactive",
    "active",
    "failed_payment",
    "expiring",
    "cancelled",
)
ACCESS_STATUSES: frozenset[str] = frozenset({"active", "expiring"})
# Subscriptions that may still charge (or be resumed and charge) the owner's card.
LIVE_STATUSES: frozenset[str] = frozenset({"active", "failed_payment", "expiring"})
AccessReason = Literal["free_access", "subscription"]


@dataclass(frozen=True)
class FormerLink:
    """A part the profile no longer has: an owner replaced, a member removed (billing history)."""

    subscription_id: str
    role: LinkRole
    left_at: datetime


@dataclass(frozen=True)
class SubscriptionLink:
    """A profile's part in one subscription: owner (billed) or member (has access)."""

    subscription_id: str
    role: LinkRole
    status: SubscriptionStatus
    payment_method_id: str | None = None


@dataclass(frozen=True)
class Access:
    profile_id: str
    has_access: bool
    reason: AccessReason | None
    subscription_ids: tuple[str, ...]


@dataclass(frozen=True)
class Profile:
    id: str
    community_id: str
    kind: ProfileKind
    name: str
    email: str | None
    account_holder_id: str | None
    free_access: bool
    # Credit per currency (lowercase code -> minor units): credit is never spent in another.
    credit_balances: Mapping[str, int]
    currency: str  # the community's currency when the profile was created
    created_at: datetime
    stripe_customer_id: str | None = None
    # The connected account the Stripe customer lives on (None: the platform account).
    stripe_customer_account: str | None = None
    # The last customer Stripe deleted (`customer.deleted`): a new one is made on next use.
    stripe_customer_deleted: str | None = None
    subscriptions: tuple[SubscriptionLink, ...] = ()
    former_subscriptions: tuple[FormerLink, ...] = ()

    @property
    def credit_balance(self) -> int:
        """The credit in the profile's own currency (what `credit_balance` shows)."""
        return self.credit_in(self.currency)

    def credit_in(self, currency: str) -> int:
        """The credit a charge in `currency` may spend."""
        return self.credit_balances.get(currency, 0)

    @property
    def is_customer(self) -> bool:
        return self.kind == "customer"

    def ensure_customer(self, field_name: str) -> None:
        if not self.is_customer:
            raise InvalidRequest.for_field(field_name, f"Profile {self.id} is not a customer.")

    def access(self) -> Access:
        """Free access, or membership of an active or expiring subscription (DESIGN.md 2)."""
        granting = tuple(
            link.subscription_id
            for link in self.subscriptions
            if link.role == "member" and link.status in ACCESS_STATUSES
        )
        if self.free_access:
            return Access(self.id, True, "free_access", granting)
        if granting:
            return Access(self.id, True, "subscription", granting)
        return Access(self.id, False, None, ())

    def live_subscriptions_paying_with(self, payment_method_id: str) -> tuple[str, ...]:
        return tuple(
            link.subscription_id
            for link in self.subscriptions
            if link.role == "owner"
            and link.status in LIVE_STATUSES
            and link.payment_method_id == payment_method_id
        )

    def stripe_customer_on(self, account: str | None) -> str | None:
        """The profile's Stripe customer if it lives on `account` (the community's current
        one; None: the platform's); a customer left on an earlier account is not it."""
        if self.stripe_customer_id and self.stripe_customer_account == account:
            return self.stripe_customer_id
        return None

    def with_details(
        self,
        *,
        name: str | None = None,
        email: str | None = None,
        free_access: bool | None = None,
    ) -> Profile:
        """The profile with name, email or free access changed (email: customers only)."""
        if email is not None and not self.is_customer:
            raise InvalidRequest.for_field("email", "Dependents have no email.")
        return replace(
            self,
            name=self.name if name is None else name,
            email=self.email if email is None else email,
            free_access=self.free_access if free_access is None else free_access,
        )

    def with_credit(self, currency: str, credit_balance: int) -> Profile:
        if credit_balance < 0:
            raise ValueError("credit balance never goes negative")
        return replace(self, credit_balances={**self.credit_balances, currency: credit_balance})


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
