"""Keeps the profile <-> subscription link items (profile_links.py) in step with a change.

The entries returned go into the same transaction as the subscription change, so profile
`subscriptions`, `GET /v1/profiles?subscription_status=` and `/access` never lag behind.
A link exists for the owner and for every current member (a member leaving at period end
keeps it until the removal takes effect); cancelled subscriptions keep their links.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.adapters.dynamodb.profile_links import delete_link, put_link
from chalicelib.domain.subscriptions import Subscription

LinkKey = tuple[str, str]  # (profile_id, role)


def _links(sub: Subscription | None) -> dict[LinkKey, tuple[str, str | None]]:
    if sub is None:
        return {}
    links: dict[LinkKey, tuple[str, str | None]] = {
        (sub.owner_id, "owner"): (sub.status, sub.payment_method_id)
    }
    for member in sub.members:
        links[(member.profile_id, "member")] = (sub.status, None)
    return links


def link_entries(
    table: str, before: Subscription | None, after: Subscription | None, now: datetime
) -> list[dict[str, Any]]:
    """Put the links that are new or changed, delete the ones that are gone."""
    old, new = _links(before), _links(after)
    subject = after or before
    if subject is None:
        return []
    entries: list[dict[str, Any]] = []
    for (profile_id, role), (status, method) in new.items():
        if old.get((profile_id, role)) != (status, method):
            entries.append(
                put_link(
                    table,
                    subject.community_id,
                    profile_id,
                    subject.id,
                    role,
                    status,
                    now,
                    payment_method_id=method,
                )
            )
    for profile_id, role in old.keys() - new.keys():
        entries.append(delete_link(table, subject.community_id, profile_id, subject.id, role))
    return entries
