"""Access (DESIGN.md section 2): free access, or a current member of an active or expiring
subscription. `failed_payment` grants none; a member whose removal has taken effect has none."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from chalicelib.domain.periods import ensure_utc
from chalicelib.domain.profiles import Access, Profile
from chalicelib.domain.subscriptions import Subscription


def has_access(profile: Profile, subscriptions: Iterable[Subscription], now: datetime) -> Access:
    """`subscriptions`: those the profile belongs to (others are ignored). Free access wins as
    the reason; `subscription_ids` lists every subscription granting access either way."""
    ensure_utc(now)
    granting = tuple(
        sorted({sub.id for sub in subscriptions if sub.grants_access(profile.id, now)})
    )
    if profile.free_access:
        return Access(profile.id, True, "free_access", granting)
    if granting:
        return Access(profile.id, True, "subscription", granting)
    return Access(profile.id, False, None, ())
