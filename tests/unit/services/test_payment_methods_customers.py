"""The Stripe customer a profile's cards live on (services/payment_methods.py), on fakes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chalicelib.adapters.clock import FixedClock
from chalicelib.adapters.stripe.customers import Card
from chalicelib.domain.communities import Community
from chalicelib.domain.profiles import Profile
from chalicelib.services.payment_methods import PaymentMethodService
from tests.support.world import CID, START


class OneProfile:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def get(self, community_id: str, profile_id: str) -> Profile:
        return self.profile

    def set_stripe_customer(
        self,
        community_id: str,
        profile_id: str,
        customer_id: str,
        account: str | None,
        previous_customer_id: str | None,
    ) -> None:
        self.profile = replace(
            self.profile, stripe_customer_id=customer_id, stripe_customer_account=account
        )


class OneCommunity:
    def get(self, community_id: str) -> Community:
        return Community(CID, "Harbour gym", "usd", None, 0, START)


class CustomerMaker:
    """Stripe's customer creation: what idempotency key each creation was sent with."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def create_customer(self, account: str | None, **params: Any) -> str:
        self.keys.append(params["idempotency_key"])
        return f"cus_{len(self.keys)}"

    def create_setup_intent(
        self, account: str | None, customer_id: str, metadata: dict[str, str]
    ) -> str:
        return f"seti_{customer_id}_secret"

    def retrieve(self, account: str | None, payment_method_id: str) -> Card:
        raise AssertionError("not used")

    def attach(self, account: str | None, customer_id: str, payment_method_id: str) -> Card:
        raise AssertionError("not used")

    def list_cards(self, *args: Any) -> tuple[list[Card], bool]:
        return [], False

    def detach(self, account: str | None, payment_method_id: str) -> None:
        raise AssertionError("not used")


class NoSnapshots:
    def mark_detached(self, community_id: str, payment_method_id: str, detached_at: str) -> None:
        pass


def test_a_customer_made_after_stripe_deleted_one_is_asked_for_with_a_new_key() -> None:
    """Stripe answers a reused idempotency key with its first answer for 24 hours: the same key
    would bring back the deleted customer, and every card would fail on it again."""
    profile = Profile("prof_ada", CID, "customer", "Ada", "a@x.org", None, False, {}, "usd", START)
    profiles, stripe = OneProfile(profile), CustomerMaker()
    service = PaymentMethodService(
        profiles, OneCommunity(), stripe, NoSnapshots(), FixedClock(START)
    )
    service.setup_intent(CID, "prof_ada")
    profiles.profile = replace(
        profiles.profile, stripe_customer_id=None, stripe_customer_deleted="cus_1"
    )

    service.setup_intent(CID, "prof_ada")

    first, after = stripe.keys
    assert first.startswith("customer-prof_ada-platform-")
    assert after.startswith("customer-prof_ada-platform-after-cus_1-")
    assert first.removeprefix("customer-prof_ada-platform-") == after.rsplit("-", 1)[1]
    assert profiles.profile.stripe_customer_id == "cus_2"
