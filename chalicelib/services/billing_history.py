"""`GET /v1/profiles/{id}/billing-history`: every subscription the profile owns or belongs to,
or did (cancelled ones, a replaced owner and a removed member included), newest first, each with
its role, whether that part is over (`former`), the profile's memberships and all the
subscription's payments (newest first; each names whom it billed).

The profile's link items (profile_links.py) name its subscriptions and its former link items
the ones it left; a part it has now wins over a former one, and an owner over a member, so each
subscription is listed once.
"""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.adapters.dynamodb.codec import format_time
from chalicelib.domain.payments import Payment
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscriptions import Subscription
from chalicelib.services.views import SubscriptionViews, payment_view


class ProfileReader(Protocol):
    def get(self, community_id: str, profile_id: str) -> Profile: ...


class SubscriptionBatchReader(Protocol):
    def get_many(self, community_id: str, subscription_ids: list[str]) -> list[Subscription]: ...


class SubscriptionPayments(Protocol):
    def for_subscription(self, community_id: str, subscription_id: str) -> list[Payment]: ...


class BillingHistory:
    def __init__(
        self,
        profiles: ProfileReader,
        subscriptions: SubscriptionBatchReader,
        payments: SubscriptionPayments,
        views: SubscriptionViews,
    ) -> None:
        self._profiles = profiles
        self._subscriptions = subscriptions
        self._payments = payments
        self._views = views

    def of_profile(self, community_id: str, profile_id: str) -> dict[str, Any]:
        profile = self._profiles.get(community_id, profile_id)
        parts = _parts(profile)
        subs = self._subscriptions.get_many(community_id, list(parts))
        subs.sort(key=lambda sub: (sub.created_at, sub.id), reverse=True)
        cache = self._views.cache(community_id)
        cache.prefetch([pid for sub in subs for pid in (sub.owner_id, *sub.member_ids)])
        data = []
        for sub in subs:
            payments = self._payments.for_subscription(community_id, sub.id)
            role, former = parts[sub.id]
            data.append(
                {
                    "subscription": self._views.view(sub, cache),
                    "role": role,
                    "former": former,
                    "memberships": _memberships(sub, profile_id),
                    "payments": [payment_view(p) for p in payments],
                }
            )
        return {"data": data}


def _parts(profile: Profile) -> dict[str, tuple[str, bool]]:
    """Subscription id -> (role, former): a current part over a former one, owner over member."""
    parts: dict[str, tuple[str, bool]] = {}
    for role, former, subscription_id in sorted(
        [(link.role, False, link.subscription_id) for link in profile.subscriptions]
        + [(link.role, True, link.subscription_id) for link in profile.former_subscriptions],
        key=lambda part: (part[1], part[0] != "owner"),
    ):
        parts.setdefault(subscription_id, (role, former))
    return parts


def _memberships(sub: Subscription, profile_id: str) -> list[dict[str, str | None]]:
    """The profile's times as a member of `sub`, oldest first (former members: the most recent
    kept on the subscription, domain/subscriptions.FORMER_MEMBERS_KEPT)."""
    stints = [m for m in (*sub.former_members, *sub.members) if m.profile_id == profile_id]
    return [
        {
            "added_at": format_time(m.added_at),
            "removed_at": format_time(m.removed_at) if m.removed_at else None,
        }
        for m in sorted(stints, key=lambda m: m.added_at)
    ]
