"""Members of a subscription: activation-fee status and pending removals."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from chalicelib.domain.errors import InvalidRequest

ActivationFeeStatus = Literal["paid", "waived", "due"]
FeeChoice = Literal["charge", "waive"]
RemovalTiming = Literal["period_end", "now"]


@dataclass(frozen=True)
class ActivationFee:
    """`due`: to be charged with the next activation/add charge; `paid`: charged by payment_id
    (amount may be 0 for a zero fee); `waived`: never charged (amount 0)."""

    status: ActivationFeeStatus
    amount: int
    payment_id: str | None = None

    @staticmethod
    def due(amount: int) -> ActivationFee:
        return ActivationFee("due", amount)

    @staticmethod
    def waived() -> ActivationFee:
        return ActivationFee("waived", 0)


@dataclass(frozen=True)
class Member:
    profile_id: str
    added_at: datetime
    activation_fee: ActivationFee
    removal_effective_at: datetime | None = None
    removed_at: datetime | None = None  # set only on former members

    @property
    def removal_pending(self) -> bool:
        return self.removal_effective_at is not None

    def is_current(self, now: datetime) -> bool:
        """Still a member at `now` (a pending removal takes effect at its effective_at)."""
        if self.removed_at is not None:
            return False
        return self.removal_effective_at is None or now < self.removal_effective_at

    def fee_paid_by(self, payment_id: str | None) -> Member:
        """A `due` fee becomes `paid` by this payment (None: nothing was charged, e.g. free)."""
        if self.activation_fee.status != "due":
            return self
        return replace(
            self, activation_fee=ActivationFee("paid", self.activation_fee.amount, payment_id)
        )


@dataclass(frozen=True)
class MemberAddition:
    """One item of `POST /subscriptions/{id}/members`: who, and charge or waive the fee."""

    profile_id: str
    activation_fee: FeeChoice = "charge"


def ensure_unique_ids(profile_ids: Sequence[str], field_name: str) -> None:
    seen: set[str] = set()
    for index, profile_id in enumerate(profile_ids):
        if not profile_id:
            raise InvalidRequest.for_field(f"{field_name}[{index}]", "A profile id is required.")
        if profile_id in seen:
            raise InvalidRequest.for_field(
                f"{field_name}[{index}]", f"Profile {profile_id} is listed twice."
            )
        seen.add(profile_id)


def member_ids(members: Iterable[Member]) -> list[str]:
    return [member.profile_id for member in members]
