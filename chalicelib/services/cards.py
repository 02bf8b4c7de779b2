"""Which card a subscription charges: a card of the billed profile's current Stripe customer.

Cards are the owner's payment methods attached through `/v1/profiles/{id}/payment-methods`
(issue 3); they live on the profile's Stripe customer. A card must belong to the billed
profile's current customer (on the community's account); anything else is a 400 naming
`payment_method_id`. Checked cards are snapshotted, so a view or a renewal needs no extra
Stripe call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from chalicelib.adapters.stripe.customers import Card
from chalicelib.domain.communities import Community
from chalicelib.domain.errors import InvalidRequest, NotFound
from chalicelib.domain.profiles import Profile
from chalicelib.services.charging import CARD_FIELD, stripe_customer_of


class ProfileFinder(Protocol):
    def find(self, community_id: str, profile_id: str) -> Profile | None: ...


class CommunityReader(Protocol):
    def get(self, community_id: str) -> Community: ...


class StripeCards(Protocol):
    def retrieve(self, account: str | None, payment_method_id: str) -> Card | None: ...


class CardSnapshotStore(Protocol):
    def find(self, community_id: str, payment_method_id: str) -> Mapping[str, Any] | None: ...
    def put(self, community_id: str, snapshot: dict[str, Any]) -> None: ...


def card_of(item: Mapping[str, Any]) -> Card:
    """A card from its snapshot."""
    return Card(
        id=item["id"],
        type=item.get("type_of_method") or "card",
        brand=item.get("brand"),
        last4=item.get("last4"),
        exp_month=item.get("exp_month"),
        exp_year=item.get("exp_year"),
        customer=item.get("customer"),
        detached=bool(item.get("detached_at")),
    )


class Cards:
    def __init__(
        self,
        profiles: ProfileFinder,
        communities: CommunityReader,
        stripe_cards: StripeCards,
        snapshots: CardSnapshotStore,
    ) -> None:
        self._profiles = profiles
        self._communities = communities
        self._stripe_cards = stripe_cards
        self._snapshots = snapshots

    def find(self, community_id: str, payment_method_id: str) -> Card | None:
        """The snapshot of a card checked before (no Stripe call)."""
        item = self._snapshots.find(community_id, payment_method_id)
        return card_of(item) if item is not None else None

    def require(self, community_id: str, profile_id: str, payment_method_id: str) -> Card:
        """`payment_method_id` is a card of `profile_id`'s current customer: from its snapshot
        when it was checked before, else checked on Stripe (and snapshotted)."""
        profile = self._profiles.find(community_id, profile_id)
        if profile is None:
            raise InvalidRequest.for_field(CARD_FIELD, f"Profile {profile_id} not found.")
        account = self._communities.get(community_id).stripe_account_id
        customer = stripe_customer_of(profile, account)
        known = self.find(community_id, payment_method_id)
        if known is not None and known.customer == customer and not known.detached:
            return known
        try:
            found = self._stripe_cards.retrieve(account, payment_method_id)
        except (NotFound, InvalidRequest):
            found = None
        if found is None or found.customer != customer:
            raise InvalidRequest.for_field(
                CARD_FIELD,
                f"Payment method {payment_method_id} is not a card on file of profile "
                f"{profile_id}.",
            )
        card = Card(
            found.id,
            found.type,
            found.brand,
            found.last4,
            found.exp_month,
            found.exp_year,
            customer,
        )
        self._snapshots.put(
            community_id,
            {
                "id": card.id,
                "profile_id": profile_id,
                "customer": customer,
                "type_of_method": card.type,
                "brand": card.brand,
                "last4": card.last4,
                "exp_month": card.exp_month,
                "exp_year": card.exp_year,
            },
        )
        return card
