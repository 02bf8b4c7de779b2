"""Everything a charge needs besides the subscription, in ONE BatchGetItem (consistent):
the community (Stripe account, fee), the billed profile (credit, Stripe customer), the card
snapshot and, for a renewal, the stored plans it may charge (its own and a queued plan change).
A renewal is then: read the subscription, this, and the two transactions.

Reads the items of communities.py, profiles.py (the profile item alone, not its links),
card_snapshots.py and plans.py by their documented keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.adapters.dynamodb.card_snapshots import card_key
from chalicelib.adapters.dynamodb.codec import parse_time
from chalicelib.adapters.dynamodb.communities import community_key
from chalicelib.adapters.dynamodb.items import from_item
from chalicelib.adapters.dynamodb.plans import plan_from_item, plan_key
from chalicelib.adapters.dynamodb.profiles import profile_from_item, profile_key
from chalicelib.domain.communities import Community
from chalicelib.domain.errors import NotFound
from chalicelib.domain.plans import Plan
from chalicelib.domain.profiles import Profile


@dataclass(frozen=True)
class BillingContext:
    community: Community
    community_disconnected: bool  # the connected account deauthorized the platform
    billed: Profile
    card: dict[str, Any] | None  # the card snapshot item, if the card was ever checked
    # The plans as stored now, by id, of those asked for (renewals) that exist.
    plans: Mapping[str, Plan] = field(default_factory=dict)


def load_billing_context(
    client: Any,
    table: str,
    community_id: str,
    profile_id: str,
    payment_method_id: str | None,
    plan_ids: Sequence[str] = (),
) -> BillingContext:
    keys = [community_key(community_id), profile_key(community_id, profile_id)]
    card = card_key(community_id, payment_method_id) if payment_method_id else None
    plans = [plan_key(community_id, plan_id) for plan_id in dict.fromkeys(plan_ids)]
    keys += [key for key in (card, *plans) if key is not None]
    request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
    items: list[dict[str, Any]] = []
    while request:
        response = client.batch_get_item(RequestItems=request)
        items += [from_item(i) for i in response.get("Responses", {}).get(table, [])]
        request = response.get("UnprocessedKeys") or {}
    by_key = {(i["pk"], i["sk"]): i for i in items}

    def find(key: dict[str, Any]) -> dict[str, Any] | None:
        return by_key.get((key["pk"]["S"], key["sk"]["S"]))

    community_item = find(keys[0])
    profile_item = find(keys[1])
    if community_item is None:
        raise NotFound(f"Community {community_id} not found.")
    if profile_item is None:
        raise NotFound(f"Profile {profile_id} not found.")
    community = Community(
        id=community_item["id"],
        name=community_item["name"],
        currency=community_item["currency"],
        stripe_account_id=community_item.get("stripe_account_id"),
        application_fee_bps=int(community_item["application_fee_bps"]),
        created_at=parse_time(community_item["created_at"]),
    )
    stored_plans = [item for item in map(find, plans) if item is not None]
    return BillingContext(
        community=community,
        community_disconnected=bool(community_item.get("stripe_deauthorized_at")),
        billed=profile_from_item(profile_item),
        card=find(card) if card else None,
        plans={plan.id: plan for plan in map(plan_from_item, stored_plans)},
    )


class DynamoBillingReader:
    """The BillingReader port: `billing_context(community_id, profile_id, payment_method_id,
    plan_ids=())`."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def billing_context(
        self,
        community_id: str,
        profile_id: str,
        payment_method_id: str | None,
        plan_ids: Sequence[str] = (),
    ) -> BillingContext:
        return load_billing_context(
            self._client, self._table, community_id, profile_id, payment_method_id, plan_ids
        )
