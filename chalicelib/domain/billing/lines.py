"""The vocabulary shared by charge planning and the payment ledger: payment kinds, order lines,
the credit line and the charge key. Imports nothing else from billing or payments, so
`billing.charges` and `payments` both import from here and never from each other in a circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

PaymentKind = Literal["activation", "renewal", "reactivation", "retry", "proration", "plan_change"]
PAYMENT_KINDS: tuple[PaymentKind, ...] = (
    "activation",
    "renewal",
    "reactivation",
    "retry",
    "proration",
    "plan_change",
)
LineKind = Literal["plan", "activation_fee", "proration", "credit", "carried"]


@dataclass(frozen=True)
class PaymentLine:
    kind: LineKind
    description: str
    plan_name: str | None
    profile_id: str | None
    unit_amount: int
    quantity: int
    amount: int

    def __post_init__(self) -> None:
        if self.quantity < 1:
            raise ValueError("a line has a quantity of at least 1")
        if self.amount != self.unit_amount * self.quantity:
            raise ValueError("line amount must equal unit_amount x quantity")
        if (self.kind == "credit") != (self.amount < 0) and self.amount != 0:
            raise ValueError("only credit lines are negative")


def credit_line(credit_applied: int) -> PaymentLine:
    return PaymentLine(
        kind="credit",
        description="Credit balance applied",
        plan_name=None,
        profile_id=None,
        unit_amount=-credit_applied,
        quantity=1,
        amount=-credit_applied,
    )


@dataclass(frozen=True)
class CarriedAmount:
    """An amount under the currency's minimum that was not charged when it was incurred: it
    is kept on the subscription and charged, once, as a `carried` line of its next charge."""

    amount: int
    incurred_at: datetime
    description: str

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError("a carried amount is positive")


def carried_line(carried: CarriedAmount) -> PaymentLine:
    return PaymentLine(
        kind="carried",
        description=f"Carried from {carried.incurred_at.date().isoformat()}: {carried.description}",
        plan_name=None,
        profile_id=None,
        unit_amount=carried.amount,
        quantity=1,
        amount=carried.amount,
    )


def charge_key(
    subscription_id: str, kind: PaymentKind, period_start: datetime | None, version: int
) -> str:
    """The key that allows at most one charge per (subscription, period, kind).

    A renewal is keyed by the period it pays for alone: one renewal per period, ever. Other
    kinds can legitimately happen again in one period (an activation retried after a decline,
    two member additions), so they are keyed by the current period's start and the
    subscription version they were planned from: two workers planning from the same state get
    the same key, and the first to write it wins.
    """
    start = period_start.strftime("%Y%m%dT%H%M%SZ") if period_start else "none"
    if kind == "renewal":
        return f"{subscription_id}#{start}#renewal"
    return f"{subscription_id}#{start}#{kind}#v{version}"
