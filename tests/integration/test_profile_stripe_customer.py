"""A customer's name and email reach their Stripe customer (Stripe's receipts and its
authentication emails go to the address on the customer), all or nothing: Stripe down is a 503
and nothing changes (docs/API.md, Profiles)."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import PLATFORM_KEY
from tests.support.localstripe import localstripe_url, new_card, stripe_for
from tests.support.webhook_flow import Billing, billing, call, community, ok

__all__ = ["billing", "localstripe_url"]


def customer_with_card(billing: Billing, key: str) -> tuple[dict[str, Any], str]:
    """A customer profile whose Stripe customer was made by attaching a card; its customer id."""
    client = billing.env.client
    profile = ok(
        client,
        "post",
        "/v1/profiles",
        key,
        {"kind": "customer", "name": "Ada", "email": "ada@example.com"},
    )
    method_id = new_card(stripe_for(billing.cutoff.target), "4242424242424242")
    path = f"/v1/profiles/{profile['id']}/payment-methods"
    ok(client, "post", path, key, {"stripe_payment_method_id": method_id})
    customer = stripe_for(billing.cutoff.target).v1.payment_methods.retrieve(method_id).customer
    return profile, str(customer)


def test_a_changed_email_and_name_reach_the_stripe_customer(billing: Billing) -> None:
    _, key = community(billing.env.client, PLATFORM_KEY)
    profile, customer_id = customer_with_card(billing, key)

    changed = ok(
        billing.env.client,
        "patch",
        f"/v1/profiles/{profile['id']}",
        key,
        {"email": "ada.new@example.com", "name": "Ada King"},
    )

    assert (changed["email"], changed["name"]) == ("ada.new@example.com", "Ada King")
    customer = stripe_for(billing.cutoff.target).v1.customers.retrieve(customer_id)
    assert (customer.email, customer.name) == ("ada.new@example.com", "Ada King")


def test_stripe_down_is_a_503_and_the_email_stays_as_it_was(billing: Billing) -> None:
    client = billing.env.client
    _, key = community(client, PLATFORM_KEY)
    profile, customer_id = customer_with_card(billing, key)
    billing.cutoff.down_next("POST", f"/v1/customers/{customer_id}", times=3)

    status, answer = call(
        client, "patch", f"/v1/profiles/{profile['id']}", key, {"email": "ada.new@example.com"}
    )

    assert status == 503, answer
    assert ok(client, "get", f"/v1/profiles/{profile['id']}", key)["email"] == "ada@example.com"
    customer = stripe_for(billing.cutoff.target).v1.customers.retrieve(customer_id)
    assert customer.email == "ada@example.com"
    # Asked again once Stripe answers, the change goes through on both sides.
    billing.cutoff.armed.clear()
    ok(client, "patch", f"/v1/profiles/{profile['id']}", key, {"email": "ada.new@example.com"})
    customer = stripe_for(billing.cutoff.target).v1.customers.retrieve(customer_id)
    assert customer.email == "ada.new@example.com"


def test_a_profile_without_a_stripe_customer_changes_without_stripe(billing: Billing) -> None:
    client = billing.env.client
    _, key = community(client, PLATFORM_KEY)
    profile = ok(
        client, "post", "/v1/profiles", key, {"kind": "customer", "name": "Bo", "email": "b@x.org"}
    )
    seen = len(billing.cutoff.seen)

    changed = ok(client, "patch", f"/v1/profiles/{profile['id']}", key, {"email": "bo@x.org"})

    assert changed["email"] == "bo@x.org"
    assert billing.cutoff.seen[seen:] == []
