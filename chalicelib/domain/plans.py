"""Plans: what a community sells. Prices, currency and activation fee never change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from chalicelib.domain.currencies import (
    ensure_chargeable_amount,
    ensure_within_maximum,
    supported_currency,
)
from chalicelib.domain.errors import Conflict, InvalidRequest

BillingCycle = Literal["month", "year"]
PlanStatus = Literal["active", "archived"]
BILLING_CYCLES: tuple[BillingCycle, ...] = ("month", "year")
MAX_GRACE_DAYS = 365


@dataclass(frozen=True)
class Plan:
    id: str
    community_id: str
    name: str
    description: str | None
    currency: str
    prices: Mapping[BillingCycle, int]
    activation_fee: int
    failed_payment_grace_days: int
    retry_schedule_days: tuple[int, ...]
    max_members: int | None
    status: PlanStatus
    created_at: datetime
    version: int = 0  # optimistic locking: every stored change is conditional on it

    @property
    def free(self) -> bool:
        """Nothing is ever charged: every price and the activation fee are zero."""
        return self.activation_fee == 0 and all(amount == 0 for amount in self.prices.values())

    def unit_amount(self, cycle: BillingCycle) -> int:
        if cycle not in self.prices:
            raise InvalidRequest.for_field("billing_cycle", f"Plan {self.id} has no {cycle} price.")
        return self.prices[cycle]

    def ensure_open_for_new_subscriptions(self) -> None:
        if self.status == "archived":
            raise Conflict(f"Plan {self.id} is archived and takes no new subscriptions.")

    def archived(self) -> Plan:
        return replace(self, status="archived")

    def with_terms(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        clear_description: bool = False,
        failed_payment_grace_days: int | None = None,
        retry_schedule_days: Sequence[int] | None = None,
        max_members: int | None = None,
        clear_max_members: bool = False,
    ) -> Plan:
        """The plan with its changeable terms changed; prices, currency and fee never change."""
        grace = (
            self.failed_payment_grace_days
            if failed_payment_grace_days is None
            else failed_payment_grace_days
        )
        retries = (
            self.retry_schedule_days if retry_schedule_days is None else tuple(retry_schedule_days)
        )
        validate_retry_schedule(grace, retries)
        if max_members is not None:
            validate_max_members(max_members)
        return replace(
            self,
            name=self.name if name is None else name,
            description=None
            if clear_description
            else (self.description if description is None else description),
            failed_payment_grace_days=grace,
            retry_schedule_days=retries,
            max_members=None
            if clear_max_members
            else (self.max_members if max_members is None else max_members),
        )


def new_plan(
    *,
    plan_id: str,
    community_id: str,
    name: str,
    description: str | None,
    currency: str,
    prices: Mapping[str, int],
    activation_fee: int,
    failed_payment_grace_days: int,
    retry_schedule_days: Sequence[int],
    max_members: int | None,
    now: datetime,
) -> Plan:
    """A new, active plan, after checking every rule on its terms."""
    supported_currency(currency)
    validate_prices(prices)
    validate_retry_schedule(failed_payment_grace_days, retry_schedule_days)
    if activation_fee < 0:
        raise InvalidRequest.for_field("activation_fee", "An activation fee is never negative.")
    for cycle, amount in prices.items():
        ensure_chargeable_amount(currency, amount, f"prices.{cycle}")
        ensure_within_maximum(currency, amount, f"prices.{cycle}", "This price")
    ensure_chargeable_amount(currency, activation_fee, "activation_fee")
    ensure_within_maximum(currency, activation_fee, "activation_fee", "This activation fee")
    if max_members is not None:
        validate_max_members(max_members)
    cycles: dict[BillingCycle, int] = {}
    for cycle in BILLING_CYCLES:
        if cycle in prices:
            cycles[cycle] = prices[cycle]
    return Plan(
        id=plan_id,
        community_id=community_id,
        name=name,
        description=description,
        currency=currency,
        prices=cycles,
        activation_fee=activation_fee,
        failed_payment_grace_days=failed_payment_grace_days,
        retry_schedule_days=tuple(retry_schedule_days),
        max_members=max_members,
        status="active",
        created_at=now,
    )


def validate_max_members(max_members: int) -> None:
    if max_members < 1:
        raise InvalidRequest.for_field("max_members", "A plan allows at least one member.")


def validate_prices(prices: Mapping[str, int]) -> None:
    if not prices:
        raise InvalidRequest.for_field("prices", "Give at least one of month or year.")
    for cycle, amount in prices.items():
        if cycle not in BILLING_CYCLES:
            raise InvalidRequest.for_field(f"prices.{cycle}", "Only month and year are offered.")
        if amount < 0:
            raise InvalidRequest.for_field(f"prices.{cycle}", "A price is never negative.")


def validate_retry_schedule(grace_days: int, retry_schedule_days: Sequence[int]) -> None:
    """Grace days in 0..365; retries strictly ascending, each positive and < grace days."""
    if not 0 <= grace_days <= MAX_GRACE_DAYS:
        raise InvalidRequest.for_field(
            "failed_payment_grace_days", f"Must be between 0 and {MAX_GRACE_DAYS}."
        )
    previous = 0
    for day in retry_schedule_days:
        if day <= previous:
            raise InvalidRequest.for_field(
                "retry_schedule_days", "Retry days must be positive and strictly ascending."
            )
        if day >= grace_days:
            raise InvalidRequest.for_field(
                "retry_schedule_days", "Every retry day must be less than the grace days."
            )
        previous = day
