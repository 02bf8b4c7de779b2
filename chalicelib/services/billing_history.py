"""`GET /v1/profiles/{id}/billing-history`: every subscription the profile owns or belongs to
(cancelled ones included), newest first, each with its role and all its payments (newest first).

The profile's link items (profile_links.py) name its subscriptions; an owner who is also a
member is listed once, as owner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.services.views import ProfileCache, payment_view, subscription_view

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container


def billing_history(container: Container, community_id: str, profile_id: str) -> dict[str, Any]:
    profile = container.profiles.get(community_id, profile_id)
    roles: dict[str, str] = {}
    for link in profile.subscriptions:
        if roles.get(link.subscription_id) != "owner":
            roles[link.subscription_id] = link.role
    subs = container.subscriptions.get_many(community_id, list(roles))
    subs.sort(key=lambda sub: (sub.created_at, sub.id), reverse=True)
    cache = ProfileCache(container, community_id)
    cache.prefetch([pid for sub in subs for pid in (sub.owner_id, *sub.member_ids)])
    data = []
    for sub in subs:
        payments = container.payments.for_subscription(community_id, sub.id)
        data.append(
            {
                "subscription": subscription_view(container, sub, cache),
                "role": roles[sub.id],
                "payments": [payment_view(p) for p in payments],
            }
        )
    return {"data": data}
