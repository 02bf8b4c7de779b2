"""`GET /v1/profiles/{id}/billing-history`: every subscription the profile owns or belongs to
(cancelled ones included), newest first, each with its role and all its payments (newest first).

The profile's link items (profile_links.py) name its subscriptions; an owner who is also a
member is listed once, as owner.
"""

from __future__ import annotations

from typing import Any, Protocol

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
        roles: dict[str, str] = {}
        for link in profile.subscriptions:
            if roles.get(link.subscription_id) != "owner":
                roles[link.subscription_id] = link.role
        subs = self._subscriptions.get_many(community_id, list(roles))
        subs.sort(key=lambda sub: (sub.created_at, sub.id), reverse=True)
        cache = self._views.cache(community_id)
        cache.prefetch([pid for sub in subs for pid in (sub.owner_id, *sub.member_ids)])
        data = []
        for sub in subs:
            payments = self._payments.for_subscription(community_id, sub.id)
            data.append(
                {
                    "subscription": self._views.view(sub, cache),
                    "role": roles[sub.id],
                    "payments": [payment_view(p) for p in payments],
                }
            )
        return {"data": data}
