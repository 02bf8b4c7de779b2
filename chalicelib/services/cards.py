"""Who is billed and with which card: owner profile -> billed_to, Stripe customer, card summary.

Cards are the owner's payment methods attached through `/v1/profiles/{id}/payment-methods`
(issue 3); they live on the profile's Stripe customer. A card must belong to the billed
profile's current customer (on the community's account); anything else is a 400 naming
`payment_method_id`. Checked cards are snapshotted (card_snapshots.py), so a view or a renewal
needs no extra Stripe call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.adapters.dynamodb.card_snapshots import CardSnapshots
from chalicelib.adapters.stripe.customers import Card
from chalicelib.domain.errors import InvalidRequest, NotFound
from chalicelib.domain.payments import BilledTo, PaymentMethodSummary
from chalicelib.domain.profiles import Profile

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

FIELD = "payment_method_id"


def billed_to_of(profile: Profile) -> BilledTo:
    return BilledTo(profile.id, profile.name, profile.email)


def _snapshots(container: Container) -> CardSnapshots:
    return CardSnapshots(container.dynamodb, container.settings.table_name)


def stripe_customer_of(container: Container, profile: Profile, account: str | None) -> str:
    """The profile's Stripe customer on the community's current account (`account`)."""
    if not profile.stripe_customer_id or profile.stripe_customer_account != account:
        raise InvalidRequest.for_field(FIELD, f"Profile {profile.id} has no card on file.")
    return profile.stripe_customer_id


def find_card(container: Container, community_id: str, pm_id: str) -> Card | None:
    """The snapshot of a card checked before (no Stripe call)."""
    item = _snapshots(container).find(community_id, pm_id)
    return card_of(item) if item is not None else None


def card_of(item: dict[str, Any]) -> Card:
    """A card from its snapshot item."""
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


def require_card(container: Container, community_id: str, profile_id: str, pm_id: str) -> Card:
    """`pm_id` is a card of `profile_id`'s current customer: from its snapshot when it was
    checked before, else checked on Stripe (and snapshotted)."""
    profile = container.profiles.find(community_id, profile_id)
    if profile is None:
        raise InvalidRequest.for_field(FIELD, f"Profile {profile_id} not found.")
    account = container.communities.get(community_id).stripe_account_id
    customer = stripe_customer_of(container, profile, account)
    known = find_card(container, community_id, pm_id)
    if known is not None and known.customer == customer and not known.detached:
        return known
    try:
        found = container.stripe_customers.retrieve(account, pm_id)
    except (NotFound, InvalidRequest):
        found = None
    if found is None or found.customer != customer:
        raise InvalidRequest.for_field(
            FIELD, f"Payment method {pm_id} is not a card on file of profile {profile_id}."
        )
    card = Card(
        found.id, found.type, found.brand, found.last4, found.exp_month, found.exp_year, customer
    )
    _snapshots(container).put(
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


def card_summary(item: dict[str, Any] | None) -> PaymentMethodSummary:
    """What a payment records of the card (from its snapshot item, if any)."""
    if item is None:
        return PaymentMethodSummary("card", None, None)
    return card_of(item).summary()
