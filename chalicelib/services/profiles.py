"""Profile use cases: customers and their dependents, details, free access, access checks.

A customer's name and email are also those of their Stripe customer (on the community's current
account), where Stripe sends receipts and authentication requests: a change is made on Stripe
first, then saved, so Stripe down is a 503 and nothing changes (Stripe refusing the address: 400
naming `email`); a customer Stripe no longer has is left alone.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime
from typing import Protocol

from chalicelib.adapters.dynamodb.codec import whole_seconds
from chalicelib.domain.access import has_access
from chalicelib.domain.communities import Community
from chalicelib.domain.errors import InvalidRequest, NotFound
from chalicelib.domain.ids import new_id
from chalicelib.domain.platform_events import AccessCheck
from chalicelib.domain.profiles import Access, Profile, ProfileKind, validate_new_profile
from chalicelib.domain.subscriptions import Subscription
from chalicelib.services.ports import Clock


def _told_if(free_access_changed: bool, profile: Profile) -> AccessCheck | None:
    """Free access changes access: the platform hears of it (access.granted/revoked)."""
    return AccessCheck(profile.community_id, (profile.id,)) if free_access_changed else None


class ProfileStore(Protocol):
    def create(self, profile: Profile, access_check: AccessCheck | None = None) -> None: ...
    def find(self, community_id: str, profile_id: str) -> Profile | None: ...
    def get(self, community_id: str, profile_id: str) -> Profile: ...
    def save_details(
        self, profile: Profile, access_check: AccessCheck | None = None, now: datetime | None = None
    ) -> None:
        """`access_check`: free access changed; the platform is told with the change."""
        ...


class CommunityReader(Protocol):
    def get(self, community_id: str) -> Community: ...


class StripeCustomerDetails(Protocol):
    def update_customer(
        self, account: str | None, customer_id: str, *, name: str, email: str | None
    ) -> None: ...


class SubscriptionFinder(Protocol):
    def find(self, community_id: str, subscription_id: str) -> Subscription | None: ...


def current_access(profile: Profile, subscriptions: SubscriptionFinder, now: datetime) -> Access:
    """The profile's access at `now`. Its links name the subscriptions that may grant it (an
    active or expiring one it is a member of); each of those is read and asked, so a member
    whose removal took effect has none from the period's end on, before the renewal that
    drops their link has run (DESIGN.md section 2)."""
    linked = profile.access()
    if not linked.subscription_ids:
        return linked
    found = (subscriptions.find(profile.community_id, sid) for sid in linked.subscription_ids)
    return has_access(profile, [sub for sub in found if sub is not None], now)


class ProfileService:
    def __init__(
        self,
        profiles: ProfileStore,
        communities: CommunityReader,
        subscriptions: SubscriptionFinder,
        clock: Clock,
        stripe_customers: StripeCustomerDetails,
    ) -> None:
        self._profiles = profiles
        self._communities = communities
        self._subscriptions = subscriptions
        self._clock = clock
        self._stripe_customers = stripe_customers

    def create(
        self,
        community_id: str,
        *,
        kind: ProfileKind,
        name: str,
        email: str | None,
        account_holder_id: str | None,
        free_access: bool,
    ) -> Profile:
        holder: Profile | None = None
        if account_holder_id is not None:
            holder = self._profiles.find(community_id, account_holder_id)
            if holder is None:
                raise InvalidRequest.for_field(
                    "account_holder_id", f"Profile {account_holder_id} not found."
                )
        validate_new_profile(kind, email, holder)
        profile = Profile(
            id=new_id("prof"),
            community_id=community_id,
            kind=kind,
            name=name,
            email=email,
            account_holder_id=account_holder_id,
            free_access=free_access,
            credit_balances={},
            currency=self._communities.get(community_id).currency,
            created_at=whole_seconds(self._clock.now()),
        )
        self._profiles.create(profile, _told_if(free_access, profile))
        return profile

    def update(
        self,
        community_id: str,
        profile_id: str,
        *,
        name: str | None = None,
        email: str | None = None,
        free_access: bool | None = None,
    ) -> Profile:
        profile = self._profiles.get(community_id, profile_id)
        changed = profile.with_details(name=name, email=email, free_access=free_access)
        if changed != profile:
            if (changed.name, changed.email) != (profile.name, profile.email):
                self._update_stripe_customer(changed)
            check = _told_if(changed.free_access != profile.free_access, changed)
            self._profiles.save_details(changed, check, self._clock.now())
        return changed

    def _update_stripe_customer(self, profile: Profile) -> None:
        account = self._communities.get(profile.community_id).stripe_account_id
        customer_id = profile.stripe_customer_on(account)
        if customer_id is None:
            return
        with suppress(NotFound):  # deleted on Stripe: nothing there to keep in step
            self._stripe_customers.update_customer(
                account, customer_id, name=profile.name, email=profile.email
            )

    def access(self, community_id: str, profile_id: str) -> Access:
        profile = self._profiles.get(community_id, profile_id)
        return current_access(profile, self._subscriptions, self._clock.now())
