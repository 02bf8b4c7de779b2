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
    # Connected accounts the community charged on before its current one: payments taken
    # there keep their account, and their news (refunds, disputes) is that account's events.
    past_stripe_account_ids: frozenset[str] = frozenset()

    def stripe_accounts(self) -> tuple[str, ...]:
        """Every connected account the community has charged on (current first)."""
        current = (self.stripe_account_id,) if self.stripe_account_id else ()
        return current + tuple(sorted(self.past_stripe_account_ids - set(current)))

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
