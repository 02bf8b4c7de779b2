"""Plans: what a community sells. Prices, currency and activation fee never change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

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

    @property
    def free(self) -> bool:
        return all(amount == 0 for amount in self.prices.values())

    def unit_amount(self, cycle: BillingCycle) -> int:
        if cycle not in self.prices:
            raise InvalidRequest.for_field("billing_cycle", f"Plan {self.id} has no {cycle} price.")
        return self.prices[cycle]

    def ensure_open_for_new_subscriptions(self) -> None:
        if self.status == "archived":
            raise Conflict(f"Plan {self.id} is archived and takes no new subscriptions.")

    def archived(self) -> Plan:
        return replace(self, status="archived")


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
