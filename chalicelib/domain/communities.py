"""Communities: the tenants. Each sells plans to its profiles, optionally through its own
connected Stripe account with a platform application fee."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chalicelib.domain.errors import InvalidRequest

MAX_FEE_BPS = 10_000


@dataclass(frozen=True)
class Community:
    id: str
    name: str
    currency: str
    stripe_account_id: str | None
    application_fee_bps: int
    created_at: datetime

    @property
    def charges_on_connected_account(self) -> bool:
        return self.stripe_account_id is not None

    def fee_bps_for_charges(self) -> int:
        """The application fee applies only to charges on a connected account."""
        return self.application_fee_bps if self.stripe_account_id else 0


def validate_fee_bps(application_fee_bps: int) -> None:
    if not 0 <= application_fee_bps <= MAX_FEE_BPS:
        raise InvalidRequest.for_field(
            "application_fee_bps", f"Must be between 0 and {MAX_FEE_BPS}."
        )
