"""Cards of customer profiles, kept on the profile's Stripe customer.

The customer is created on first use, on the community's connected account when it has one
(else on the platform account), and re-created if the community later connects another
account. A card that a live subscription (active, failed_payment, expiring) charges cannot be
detached: the owner link of that subscription names it (`payment_method_id`, written by the
subscription service through profile_links.put_link/update_link). A card we detach is flagged
on its snapshot at once (Stripe's `payment_method.detached` may come later), so no subscription
shows it usable and no charge sends it to Stripe again (services/charging.py: `card_detached`).
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from chalicelib.adapters.stripe.customers import PM_FIELD, Card
from chalicelib.domain.communities import Community
from chalicelib.domain.errors import Conflict, InvalidRequest, NotFound
from chalicelib.domain.profiles import Profile
from chalicelib.services.ports import Clock


class ProfileStore(Protocol):
    def get(self, community_id: str, profile_id: str) -> Profile: ...
    def set_stripe_customer(
        self,
        community_id: str,
        profile_id: str,
        customer_id: str,
        account: str | None,
        previous_customer_id: str | None,
    ) -> None: ...


class CommunityReader(Protocol):
    def get(self, community_id: str) -> Community: ...


class DetachedCards(Protocol):
    def mark_detached(self, community_id: str, payment_method_id: str, detached_at: str) -> None:
        """Flag the card's snapshot detached (nothing when no subscription ever used it)."""
        ...


class CardGateway(Protocol):
    def create_customer(
        self,
        account: str | None,
        *,
        name: str,
        email: str | None,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> str: ...
    def attach(self, account: str | None, customer_id: str, payment_method_id: str) -> Card: ...
    def retrieve(self, account: str | None, payment_method_id: str) -> Card: ...
    def list_cards(
        self, account: str | None, customer_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Card], bool]: ...
    def detach(self, account: str | None, payment_method_id: str) -> None: ...
    def create_setup_intent(
        self, account: str | None, customer_id: str, metadata: dict[str, str]
    ) -> str: ...


def _customer_key(profile: Profile, account: str | None) -> str:
    """The idempotency key of the profile's customer on `account`; after Stripe deleted one,
    another key (Stripe would answer a reused key with the deleted customer for 24 hours).

    It ends with a digest of the name and email the request carries: Stripe refuses a key sent
    again with other parameters (400 `idempotency_error`, for 24 hours), and a first request
    whose answer was lost is sent again after the profile's name or email changed. The same
    details keep the same key (one customer however often it is retried); new ones make a new
    customer (the first stays unused on Stripe, with our ids in its metadata)."""
    key = f"customer-{profile.id}-{account or 'platform'}"
    if profile.stripe_customer_deleted:
        key += f"-after-{profile.stripe_customer_deleted}"
    details = f"{profile.name}\n{profile.email or ''}".encode()
    return f"{key}-{hashlib.sha256(details).hexdigest()[:16]}"


class PaymentMethodService:
    def __init__(
        self,
        profiles: ProfileStore,
        communities: CommunityReader,
        stripe: CardGateway,
        detached_cards: DetachedCards,
        clock: Clock,
    ) -> None:
        self._profiles = profiles
        self._communities = communities
        self._stripe = stripe
        self._detached_cards = detached_cards
        self._clock = clock

    def _customer_profile(self, community_id: str, profile_id: str) -> tuple[Profile, str | None]:
        profile = self._profiles.get(community_id, profile_id)
        profile.ensure_customer("profile_id")
        return profile, self._communities.get(community_id).stripe_account_id

    def ensure_customer(self, profile: Profile, account: str | None) -> str:
        """The profile's Stripe customer on `account`, created now if it has none there."""
        existing = profile.stripe_customer_on(account)
        if existing:
            return existing
        customer_id = self._stripe.create_customer(
            account,
            name=profile.name,
            email=profile.email,
            metadata={"community_id": profile.community_id, "profile_id": profile.id},
            idempotency_key=_customer_key(profile, account),
        )
        try:
            self._profiles.set_stripe_customer(
                profile.community_id, profile.id, customer_id, account, profile.stripe_customer_id
            )
        except Conflict:
            # A concurrent first use recorded its customer first: use that one.
            stored = self._profiles.get(profile.community_id, profile.id)
            winner = stored.stripe_customer_on(account)
            if winner is None:
                raise
            return winner
        return customer_id

    def attach(self, community_id: str, profile_id: str, payment_method_id: str) -> Card:
        """The card on the profile's Stripe customer. A card that another customer holds is
        refused (400), never moved: whoever knows its id must not charge it elsewhere."""
        profile, account = self._customer_profile(community_id, profile_id)
        customer_id = self.ensure_customer(profile, account)
        try:
            card = self._stripe.retrieve(account, payment_method_id)
        except NotFound:
            raise InvalidRequest.for_field(PM_FIELD, "No such payment method.") from None
        if card.customer == customer_id:
            return card  # attached already (a SetupIntent for this customer does that)
        if card.customer is not None:
            raise InvalidRequest.for_field(
                PM_FIELD, "This card belongs to another customer; set it up for this profile."
            )
        return self._stripe.attach(account, customer_id, payment_method_id)

    def list(
        self, community_id: str, profile_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Card], bool]:
        profile, account = self._customer_profile(community_id, profile_id)
        customer_id = profile.stripe_customer_on(account)
        if customer_id is None:
            return [], False
        return self._stripe.list_cards(account, customer_id, limit, starting_after)

    def detach(self, community_id: str, profile_id: str, payment_method_id: str) -> None:
        profile, account = self._customer_profile(community_id, profile_id)
        customer_id = profile.stripe_customer_on(account)
        if customer_id is None:
            raise NotFound(f"Payment method {payment_method_id} not found.")
        card = self._stripe.retrieve(account, payment_method_id)
        if card.customer != customer_id:
            raise NotFound(f"Payment method {payment_method_id} not found.")
        in_use = profile.live_subscriptions_paying_with(payment_method_id)
        if in_use:
            raise Conflict(
                f"Payment method {payment_method_id} is used by subscription(s) "
                f"{', '.join(in_use)}; give them another card first."
            )
        self._stripe.detach(account, payment_method_id)
        self._detached_cards.mark_detached(
            community_id, payment_method_id, self._clock.now().isoformat()
        )

    def setup_intent(self, community_id: str, profile_id: str) -> str:
        profile, account = self._customer_profile(community_id, profile_id)
        customer_id = self.ensure_customer(profile, account)
        return self._stripe.create_setup_intent(
            account, customer_id, {"community_id": community_id, "profile_id": profile_id}
        )
