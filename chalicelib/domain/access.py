"""Access (DESIGN.md section 2): free access, or a current member of an active or expiring
subscription. `failed_payment` grants none; a member whose removal has taken effect has none."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from chalicelib.domain.periods import ensure_utc
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscriptions import Subscription

AccessReason = Literal["free_access", "subscription"]


@dataclass(frozen=True)
class AccessDecision:
    """`GET /v1/profiles/{id}/access` -> {profile_id, has_access, reason, subscription_ids}."""

    profile_id: str
    has_access: bool
    reason: AccessReason | None
    subscription_ids: tuple[str, ...]


def has_access(
    profile: Profile, subscriptions: Iterable[Subscription], now: datetime
) -> AccessDecision:
    """`subscriptions`: those the profile belongs to (others are ignored). Free access wins as
    the reason; `subscription_ids` lists every subscription granting access either way."""
    ensure_utc(now)
    granting = tuple(
        sorted({sub.id for sub in subscriptions if sub.grants_access(profile.id, now)})
    )
    if profile.free_access:
        return AccessDecision(profile.id, True, "free_access", granting)
    if granting:
        return AccessDecision(profile.id, True, "subscription", granting)
    return AccessDecision(profile.id, False, None, ())
